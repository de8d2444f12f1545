"""The gateway service: the HTTP/WebSocket server and the relay that feeds it."""

from __future__ import annotations

import logging
import socket
from datetime import timedelta

from services.common.bus import Bus
from services.common.lineup import load_lineup
from services.common.ops_http import HttpServer, bind_socket, cut_stalled_peers
from services.common.runner import ServiceContext
from services.common.settings import Settings
from services.gateway.agents import AgentBoard
from services.gateway.app import GatewayParts, create_app
from services.gateway.cache import ReadCache
from services.gateway.control import AdminGuard, RateLimit
from services.gateway.hub import Hub, HubLimits
from services.gateway.metrics import GatewayMetrics
from services.gateway.origin_policy import OriginPolicy
from services.gateway.reader import ArenaReader
from services.gateway.relay import subscribe_heartbeats, subscribe_relays
from services.gateway.seasons import SeasonShelf

log = logging.getLogger(__name__)

# Scheduler control calls allowed per window (all callers together).
CONTROL_CALLS = 10
CONTROL_WINDOW = timedelta(minutes=1)
# A connection whose peer has taken no data for this many WebSocket send timeouts (30 s
# by default) is cut by the kernel, so a dropped client that never reads again does not
# keep its connection and buffers.
STALLED_PEER_SEND_TIMEOUTS = 6
# Kernel send buffer of each connection (Linux doubles it). Autotuning lets a client that
# never reads park up to 4 MB in the kernel (charged to the gateway's container), and
# costs the gateway the CPU to copy it there; 256 KB still carries a ~90 KB snapshot
# and more per round trip.
SOCKET_SEND_BUFFER = 128 * 1024


class GatewayService:
    def __init__(
        self,
        *,
        bus: Bus,
        hub: Hub,
        board: AgentBoard,
        cache: ReadCache,
        server: HttpServer,
        settings: Settings,
    ) -> None:
        self._bus = bus
        self._cache = cache
        self._hub = hub
        self._board = board
        self._server = server
        self._settings = settings
        self._serving = False

    @property
    def port(self) -> int:
        return self._server.port

    async def start(self) -> None:
        await subscribe_relays(self._bus, self._hub, self._cache)
        await subscribe_heartbeats(self._bus, self._board, self._hub)
        await self._server.start()
        self._serving = True
        log.info(
            "gateway listening on http://%s:%d (dashboard at /dashboard/)",
            self._settings.gateway_host,
            self._server.port,
        )

    async def stop(self) -> None:
        # Sessions end first: uvicorn waits for open connections before it returns.
        self._hub.close_all()
        if self._serving:
            self._serving = False
            await self._server.stop()

    def readiness(self) -> dict[str, bool]:
        return {"http": self._serving}


def hub_limits(settings: Settings) -> HubLimits:
    return HubLimits(
        queue_size=settings.ws_queue_size,
        buffer_bytes=settings.ws_client_buffer_bytes,
        max_clients=settings.ws_max_clients,
        send_timeout=settings.ws_send_timeout,
    )


async def build(ctx: ServiceContext) -> GatewayService:
    settings = ctx.settings
    metrics = GatewayMetrics(ctx.registry)
    hub = Hub(ctx.clock, metrics, hub_limits(settings))
    board = AgentBoard(load_lineup(settings.agents_file))
    cache = ReadCache()
    sock = bind_socket(settings.gateway_host, settings.gateway_port)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_SEND_BUFFER)  # inherited
    if not cut_stalled_peers(sock, STALLED_PEER_SEND_TIMEOUTS * settings.ws_send_timeout):
        log.warning("TCP_USER_TIMEOUT is not available: dropped clients linger until they leave")
    # Same-origin by default is the port actually bound (GATEWAY_PORT=0 picks one).
    port = int(sock.getsockname()[1])
    parts = GatewayParts(
        reader=ArenaReader(ctx.bus, settings.request_timeout),
        hub=hub,
        board=board,
        guard=AdminGuard(settings.admin_token, RateLimit(ctx.clock, CONTROL_CALLS, CONTROL_WINDOW)),
        cache=cache,
        clock=ctx.clock,
        metrics=metrics,
        settings=settings,
        origins=OriginPolicy.configured(settings.ws_allowed_origins, settings.gateway_host, port),
        seasons=SeasonShelf(settings.seasons_dir),
    )
    server = HttpServer(create_app(parts), sock)
    return GatewayService(
        bus=ctx.bus, hub=hub, board=board, cache=cache, server=server, settings=settings
    )
