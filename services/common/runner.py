"""The one way every service starts and stops.

``python -m services.<name>`` calls :func:`main`: load settings, connect to NATS,
create the streams, build the service, start it and its ``/metrics`` endpoint, wait
for SIGTERM or SIGINT, stop the service, drain the bus, exit 0, on uvloop's event loop.
Tests use :class:`ServiceHost` to run the same sequence in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import uvloop
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from services.common.bus import Bus, BusMetrics, TransientError, redact_url
from services.common.clock import Clock, SystemClock
from services.common.logs import configure_logging
from services.common.nats_connection import MAX_RETRY_WAIT_SECONDS
from services.common.ops_http import HttpServer, bind_socket, ops_app
from services.common.settings import Settings, settings_problems
from services.common.streams import StreamLimits

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
        self._streams_ready = False

    @property
    def metrics_port(self) -> int:
        if self._ops is None:
            raise RuntimeError(f"{self.name} is not started")
        return self._ops.port

    def _ready(self) -> dict[str, bool]:
        checks = {
            "nats": self.bus is not None and self.bus.connected,
            "streams": self._streams_ready,
            "consumers": self.bus is not None and self.bus.consumers_alive,
        }
        if self.service is not None:
            checks.update(self.service.readiness())
        else:
            checks["service"] = False
        return checks

    async def start(self) -> None:
        """Serve the ops endpoint, then connect and build the service.

        NATS, the streams or the service's own dependencies (the ledger's Postgres) may not
        be there yet: each is retried for as long as it takes while ``/readyz`` says what
        is missing, so a service started before its dependencies, or while one restarts,
        comes up by itself instead of exiting.
        """
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
            connect_timeout=None,
            credentials=str(settings.nats_creds) if settings.nats_creds else None,
        )
        await self._ensure_streams()
        context = ServiceContext(self.name, settings, self.bus, self._clock, self.registry)
        self.service = await self._factory(context)
        await self.service.start()
        log.info(
            "%s started",
            self.name,
            extra={"metrics_port": self._ops.port, "nats": redact_url(settings.nats_url)},
        )

    async def _ensure_streams(self) -> None:
        assert self.bus is not None
        limits = StreamLimits.from_settings(self._settings)
        wait = 0.25
        while True:
            try:
                await self.bus.ensure_streams(limits, update=False)
            except TransientError as exc:
                log.warning("%s: streams not usable yet: %s", self.name, exc)
                await asyncio.sleep(wait)
                wait = min(wait * 2, MAX_RETRY_WAIT_SECONDS)
                continue
            self._streams_ready = True
            return

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
    # Starting may wait a long time for NATS or Postgres: a signal must still end it.
    starting = asyncio.create_task(host.start(), name=f"{host.name}:start")
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if starting.done():
        starting.result()  # a start that failed for good ends the process with its error
        await stop.wait()
        log.info("%s: signal received, draining", host.name)
    else:
        log.info("%s: signal received while starting, stopping", host.name)
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await starting
    stopped.cancel()
    await host.stop()


def load_settings(name: str) -> Settings:
    """The settings from the environment; when a variable is wrong, say which and exit 2.

    Printed to stderr, one line per variable and never a value (logging is configured by
    the settings, so it cannot say it): a traceback would be noise around the one fact.
    """
    try:
        return Settings()
    except ValidationError as exc:
        problems = settings_problems(exc)
    print(f"{name} cannot start: invalid configuration", file=sys.stderr)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
    sys.exit(2)


def main(name: str, factory: Factory, settings: Settings | None = None) -> None:
    """Entry point of ``python -m services.<name>``."""
    settings = settings or load_settings(name)
    configure_logging(name, settings.log_level, settings.log_dir)
    try:
        # uvloop's event loop: the same asyncio, with less CPU per message and socket write
        # (docs/bench.md, "Replay: where a cycle goes").
        uvloop.run(_serve_until_signalled(ServiceHost(name, factory, settings)))
    except Exception as exc:
        log.critical("%s failed: %s", name, exc, exc_info=True)
        sys.exit(1)
    sys.exit(0)
