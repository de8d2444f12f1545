"""The one way every service starts and stops.

``python -m services.<name>`` calls :func:`main`: load settings, connect to NATS,
create the streams, build the service, start it and its ``/metrics`` endpoint, wait
for SIGTERM or SIGINT, stop the service, drain the bus, exit 0. Tests use
:class:`ServiceHost` to run the same sequence in-process.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client import CollectorRegistry

from services.common.bus import Bus, BusMetrics, redact_url
from services.common.clock import Clock, SystemClock
from services.common.logs import configure_logging
from services.common.ops_http import HttpServer, bind_socket, ops_app
from services.common.settings import Settings

log = logging.getLogger(__name__)


class Service(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def readiness(self) -> dict[str, bool]:
        """Named checks that must all hold for the service to be ready."""
        ...


@dataclass
class ServiceContext:
    """What a service factory gets: everything it may depend on, nothing global."""

    name: str
    settings: Settings
    bus: Bus
    clock: Clock
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)


Factory = Callable[[ServiceContext], Awaitable[Service]]


class ServiceHost:
    """Runs one service: bus, service, ops endpoint; started and stopped as a unit."""

    def __init__(
        self,
        name: str,
        factory: Factory,
        settings: Settings,
        clock: Clock | None = None,
    ) -> None:
        self.name = name
        self._factory = factory
        self._settings = settings
        self._clock = clock or SystemClock()
        self.registry = CollectorRegistry()
        self.bus: Bus | None = None
        self.service: Service | None = None
        self._ops: HttpServer | None = None

    @property
    def metrics_port(self) -> int:
        if self._ops is None:
            raise RuntimeError(f"{self.name} is not started")
        return self._ops.port

    def _ready(self) -> dict[str, bool]:
        checks = {
            "nats": self.bus is not None and self.bus.connected,
            "consumers": self.bus is not None and self.bus.consumers_alive,
        }
        if self.service is not None:
            checks.update(self.service.readiness())
        else:
            checks["service"] = False
        return checks

    async def start(self) -> None:
        settings = self._settings
        self._ops = HttpServer(
            ops_app(self.registry, self._ready),
            bind_socket(settings.metrics_host, settings.metrics_port),
        )
        await self._ops.start()
        self.bus = await Bus.connect(
            settings.nats_url,
            self.name,
            BusMetrics(self.registry),
            max_deliver=settings.max_deliver,
            credentials=str(settings.nats_creds) if settings.nats_creds else None,
        )
        await self.bus.ensure_streams()
        context = ServiceContext(self.name, settings, self.bus, self._clock, self.registry)
        self.service = await self._factory(context)
        await self.service.start()
        log.info(
            "%s started",
            self.name,
            extra={"metrics_port": self._ops.port, "nats": redact_url(settings.nats_url)},
        )

    async def stop(self) -> None:
        if self.service is not None:
            try:
                await self.service.stop()
            except Exception:
                log.exception("%s did not stop cleanly", self.name)
        if self.bus is not None:
            await self.bus.close()
        if self._ops is not None:
            await self._ops.stop()
        log.info("%s stopped", self.name)


async def _serve_until_signalled(host: ServiceHost) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await host.start()
    await stop.wait()
    log.info("%s: signal received, draining", host.name)
    await host.stop()


def main(name: str, factory: Factory, settings: Settings | None = None) -> None:
    """Entry point of ``python -m services.<name>``."""
    settings = settings or Settings()
    configure_logging(name, settings.log_level, settings.log_dir)
    try:
        asyncio.run(_serve_until_signalled(ServiceHost(name, factory, settings)))
    except Exception as exc:
        log.critical("%s failed: %s", name, exc, exc_info=True)
        sys.exit(1)
    sys.exit(0)
