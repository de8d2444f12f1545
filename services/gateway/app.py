"""The gateway's FastAPI application, assembled from per-area routers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.routing import Route

from services.common.clock import Clock
from services.common.settings import Settings
from services.gateway.agents import AgentBoard
from services.gateway.cache import ReadCache
from services.gateway.control import AdminGuard
from services.gateway.errors import install_error_handlers
from services.gateway.hub import Hub
from services.gateway.metrics import GatewayMetrics, HttpMetricsMiddleware, MetricsEndpoint
from services.gateway.origin_policy import OriginPolicy
from services.gateway.processes import ProcessStatus
from services.gateway.protocol import EventType
from services.gateway.reader import ArenaReader
from services.gateway.routers import health, market, scheduler, seasons, trading, ws
from services.gateway.routers.health import API_NAME, package_version
from services.gateway.seasons import SeasonShelf
from services.gateway.security import SecurityHeadersMiddleware

STATIC_DIR = Path(__file__).resolve().parent / "static"
DASHBOARD_PATH = "/dashboard"

DESCRIPTION = (
    "Read-only view of the arena: accounts, positions, trades, decisions, market data and "
    "the scheduler, answered by the ledger and the market over NATS; `WS /ws` relays cycles "
    "and decisions live; the dashboard is at `/dashboard/`; `/seasons` serves the season "
    "reports of `ARENA_SEASONS_DIR`. Scheduler control calls need "
    "`Authorization: Bearer <ARENA_ADMIN_TOKEN>`."
)


@dataclass(frozen=True)
class GatewayParts:
    """Everything the app is built from."""

    reader: ArenaReader
    hub: Hub
    board: AgentBoard
    guard: AdminGuard
    cache: ReadCache
    clock: Clock
    metrics: GatewayMetrics
    settings: Settings
    origins: OriginPolicy
    seasons: SeasonShelf


def create_app(parts: GatewayParts) -> FastAPI:
    """Everything the app uses is passed in; nothing is read from module state."""
    app = FastAPI(title=API_NAME, version=package_version(), description=DESCRIPTION)
    install_error_handlers(app)
    reader, hub = parts.reader, parts.hub
    areas = [
        trading.router(reader, parts.board, parts.clock, parts.cache),
        market.router(reader, parts.settings.symbols, parts.cache),
        scheduler.router(
            reader,
            parts.guard,
            parts.clock,
            on_change=lambda status: hub.broadcast(EventType.SCHEDULER_STATUS, status),
        ),
        ws.router(hub, reader, parts.board, parts.origins),
        trading.audit_router(reader),
        seasons.router(parts.seasons),
    ]
    health_api = health.router(
        reader,
        parts.board,
        parts.clock,
        listed=areas,
        process_status=ProcessStatus(parts.settings.process_status_file),
    )
    for api in (health_api, *areas):
        app.include_router(api)
    app.router.routes.append(
        Route("/metrics", MetricsEndpoint(parts.metrics.registry), include_in_schema=False)
    )
    app.mount(DASHBOARD_PATH, StaticFiles(directory=STATIC_DIR, html=True), name="dashboard")
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(HttpMetricsMiddleware, metrics=parts.metrics)
    return app
