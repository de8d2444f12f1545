"""``/scheduler/*``: the market's cycle scheduler."""

from __future__ import annotations

from fastapi import APIRouter

from services.common.contracts import SchedulerStatus
from services.gateway.errors import ERROR_RESPONSES
from services.gateway.reader import ArenaReader


def router(reader: ArenaReader) -> APIRouter:
    api = APIRouter(prefix="/scheduler", tags=["scheduler"], responses=ERROR_RESPONSES)

    @api.get("/status", response_model=SchedulerStatus, summary="Scheduler state and counters")
    async def status() -> SchedulerStatus:
        return await reader.scheduler_status()

    return api
