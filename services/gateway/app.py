"""The gateway's FastAPI application, assembled from per-area routers."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.routing import Route

from services.common.settings import Settings
from services.gateway.errors import install_error_handlers
from services.gateway.hub import Hub
from services.gateway.metrics import GatewayMetrics, HttpMetricsMiddleware, MetricsEndpoint
from services.gateway.reader import ArenaReader
from services.gateway.routers import health, scheduler, trading, ws
from services.gateway.routers.health import API_NAME, package_version

DESCRIPTION = (
    "Read-only view of the arena: accounts, leaderboard and scheduler, answered by the "
    "ledger and market over NATS, and `WS /ws` relaying cycles and decisions live."
)


def create_app(
    reader: ArenaReader, hub: Hub, settings: Settings, metrics: GatewayMetrics
) -> FastAPI:
    """Everything the app uses is passed in; nothing is read from module state."""
    app = FastAPI(title=API_NAME, version=package_version(), description=DESCRIPTION)
    # Kept for routers that need configuration (the admin token of the control endpoints).
    app.state.settings = settings
    install_error_handlers(app)
    areas = [
        trading.router(reader),
        scheduler.router(reader),
        ws.router(hub, reader, metrics),
    ]
    for api in (health.router(reader, listed=areas), *areas):
        app.include_router(api)
    app.router.routes.append(
        Route("/metrics", MetricsEndpoint(metrics.registry), include_in_schema=False)
    )
    app.add_middleware(HttpMetricsMiddleware, metrics=metrics)
    return app
