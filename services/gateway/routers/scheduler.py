"""``/scheduler/*``: the market's cycle scheduler; control calls need the admin token."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Header

from services.common.clock import Clock
from services.common.contracts import SchedulerStatus
from services.gateway.control import AdminGuard
from services.gateway.errors import ERROR_RESPONSES, ErrorDetail
from services.gateway.reader import ArenaReader
from services.gateway.responses import NextRun, SchedulerStats

CONTROL_RESPONSES: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorDetail, "description": "Missing or wrong admin token."},
    403: {"model": ErrorDetail, "description": "No admin token is configured."},
    429: {"model": ErrorDetail, "description": "Too many control calls."},
}

Authorization = Annotated[
    str | None, Header(description="`Bearer <ARENA_ADMIN_TOKEN>`", alias="Authorization")
]


def router(
    reader: ArenaReader,
    guard: AdminGuard,
    clock: Clock,
    on_change: Callable[[SchedulerStatus], None],
) -> APIRouter:
    api = APIRouter(prefix="/scheduler", tags=["scheduler"], responses=ERROR_RESPONSES)

    async def control(
        authorization: str | None, call: Callable[[str], Awaitable[SchedulerStatus]]
    ) -> SchedulerStatus:
        guard.check(authorization)
        status = await call("gateway-admin")
        on_change(status)
        return status

    @api.get("/status", response_model=SchedulerStatus, summary="Scheduler state and counters")
    async def status() -> SchedulerStatus:
        return await reader.scheduler_status()

    @api.post(
        "/trigger",
        response_model=SchedulerStatus,
        summary="Run a cycle now",
        responses=CONTROL_RESPONSES,
    )
    async def trigger(authorization: Authorization = None) -> SchedulerStatus:
        return await control(authorization, reader.scheduler_trigger)

    @api.post(
        "/pause", response_model=SchedulerStatus, summary="Pause", responses=CONTROL_RESPONSES
    )
    async def pause(authorization: Authorization = None) -> SchedulerStatus:
        return await control(authorization, reader.scheduler_pause)

    @api.post(
        "/resume", response_model=SchedulerStatus, summary="Resume", responses=CONTROL_RESPONSES
    )
    async def resume(authorization: Authorization = None) -> SchedulerStatus:
        return await control(authorization, reader.scheduler_resume)

    @api.get("/stats", response_model=SchedulerStats, summary="Cycle counters and durations")
    async def stats() -> SchedulerStats:
        s = await reader.scheduler_status()
        return SchedulerStats(**dict(s))

    @api.get("/next-run", response_model=NextRun, summary="When the next cycle starts")
    async def next_run() -> NextRun:
        s = await reader.scheduler_status()
        until = (s.next_run_at - clock.now()).total_seconds() if s.next_run_at else None
        return NextRun(
            next_run_at=s.next_run_at,
            seconds_until=max(0.0, until) if until is not None else None,
            paused=s.paused,
            running=s.running,
            cycle_seconds=s.cycle_seconds,
        )

    return api
