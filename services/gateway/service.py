"""The gateway service: the HTTP/WebSocket server and the relay that feeds it."""

from __future__ import annotations

import logging

from services.common.bus import Bus
from services.common.ops_http import HttpServer, bind_socket
from services.common.runner import ServiceContext
from services.common.settings import Settings
from services.gateway.app import create_app
from services.gateway.hub import Hub
from services.gateway.metrics import GatewayMetrics
from services.gateway.reader import ArenaReader
from services.gateway.relay import subscribe_relays

log = logging.getLogger(__name__)


class GatewayService:
    def __init__(self, bus: Bus, hub: Hub, server: HttpServer, settings: Settings) -> None:
        self._bus = bus
        self._hub = hub
        self._server = server
        self._settings = settings
        self._serving = False

    @property
    def port(self) -> int:
        return self._server.port

    async def start(self) -> None:
        await subscribe_relays(self._bus, self._hub)
        await self._server.start()
        self._serving = True
        log.info(
            "gateway listening on http://%s:%d", self._settings.gateway_host, self._server.port
        )

    async def stop(self) -> None:
        # Sessions end first: uvicorn waits for open connections before it returns.
        self._hub.close_all()
        if self._serving:
            self._serving = False
            await self._server.stop()

    def readiness(self) -> dict[str, bool]:
        return {"http": self._serving}


async def build(ctx: ServiceContext) -> GatewayService:
    settings = ctx.settings
    metrics = GatewayMetrics(ctx.registry)
    hub = Hub(ctx.clock, metrics)
    reader = ArenaReader(ctx.bus, settings.request_timeout)
    app = create_app(reader, hub, settings, metrics)
    server = HttpServer(app, bind_socket(settings.gateway_host, settings.gateway_port))
    return GatewayService(ctx.bus, hub, server, settings)
