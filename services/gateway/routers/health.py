"""``GET /`` (the API root) and ``GET /health``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute, APIWebSocketRoute
from pydantic import BaseModel, Field

from services.common.clock import Clock
from services.gateway.agents import AgentBoard, AgentState
from services.gateway.errors import UpstreamError
from services.gateway.processes import ProcessState, ProcessStatus
from services.gateway.reader import ArenaReader

API_NAME = "LLM Trading Arena API"


class Endpoint(BaseModel):
    path: str
    methods: list[str]


class ApiRoot(BaseModel):
    name: str
    version: str
    docs: str
    openapi: str
    health: str
    dashboard: str
    endpoints: list[Endpoint]


class ComponentHealth(BaseModel):
    ok: bool
    detail: str


class HealthReport(BaseModel):
    status: Literal["ok", "degraded"]
    nats: ComponentHealth
    ledger: ComponentHealth
    market: ComponentHealth
    agents: tuple[AgentState, ...]
    disabled_agents: list[str]
    processes: dict[str, ProcessState] | None = Field(
        default=None,
        description="Under `make run`: each process's state and how often the supervisor "
        "restarted it.",
    )


def package_version() -> str:
    try:
        return version("llm-trading-arena")
    except PackageNotFoundError:
        return "unknown"


def endpoints_of(routers: Sequence[APIRouter]) -> list[Endpoint]:
    """The documented HTTP and WebSocket endpoints of ``routers``, in order."""
    found = []
    for api in routers:
        for route in api.routes:
            if isinstance(route, APIRoute) and route.include_in_schema:
                found.append(Endpoint(path=route.path, methods=sorted(route.methods or ())))
            elif isinstance(route, APIWebSocketRoute):
                found.append(Endpoint(path=route.path, methods=["WEBSOCKET"]))
    return found


async def _probe(check: Awaitable[object]) -> ComponentHealth:
    try:
        await check
    except UpstreamError as exc:
        return ComponentHealth(ok=False, detail=exc.detail)
    return ComponentHealth(ok=True, detail="answered")


def router(
    reader: ArenaReader,
    board: AgentBoard,
    clock: Clock,
    listed: Sequence[APIRouter],
    process_status: ProcessStatus | None = None,
) -> APIRouter:
    """The API root lists this router's endpoints and those of ``listed``."""
    api = APIRouter(tags=["health"])

    @api.get("/", response_model=ApiRoot, summary="API root")
    async def root() -> ApiRoot:
        return ApiRoot(
            name=API_NAME,
            version=package_version(),
            docs="/docs",
            openapi="/openapi.json",
            health="/health",
            dashboard="/dashboard/",
            endpoints=catalogue,
        )

    @api.get(
        "/health",
        response_model=HealthReport,
        summary="NATS connection and reachability of the ledger and the market",
        responses={503: {"model": HealthReport, "description": "Some part is not reachable."}},
    )
    async def health() -> JSONResponse:
        ledger, market = await asyncio.gather(
            _probe(reader.accounts()), _probe(reader.scheduler_status())
        )
        nats = ComponentHealth(
            ok=reader.nats_connected,
            detail="connected" if reader.nats_connected else "not connected",
        )
        ok = nats.ok and ledger.ok and market.ok
        agents = board.states(clock.now())
        report = HealthReport(
            status="ok" if ok else "degraded",
            nats=nats,
            ledger=ledger,
            market=market,
            agents=agents,
            disabled_agents=[a.agent_id for a in agents if a.status == "disabled"],
            processes=process_status.read() if process_status is not None else None,
        )
        return JSONResponse(report.model_dump(mode="json"), status_code=200 if ok else 503)

    catalogue = endpoints_of([api, *listed])
    return api
