"""The market service: a source, the cycle scheduler, and the requests they answer."""

from __future__ import annotations

from services.common import subjects
from services.common.bus import BadRequest, Bus
from services.common.contracts import (
    SchedulerCommand,
    SchedulerStatus,
    SnapshotQuery,
    SnapshotReply,
)
from services.common.lineup import load_lineup
from services.common.runner import ServiceContext
from services.market.metrics import MarketMetrics
from services.market.scheduler import CycleRunning, CycleScheduler, SchedulerConfig
from services.market.selection import create_source
from services.market.source import MarketSource


class MarketService:
    def __init__(self, bus: Bus, scheduler: CycleScheduler, source: MarketSource) -> None:
        self._bus = bus
        self._scheduler = scheduler
        self._source = source

    async def start(self) -> None:
        bus = self._bus
        await bus.serve(subjects.SCHEDULER_STATUS, SchedulerCommand, self._status)
        await bus.serve(subjects.SCHEDULER_TRIGGER, SchedulerCommand, self._trigger)
        await bus.serve(subjects.SCHEDULER_PAUSE, SchedulerCommand, self._pause)
        await bus.serve(subjects.SCHEDULER_RESUME, SchedulerCommand, self._resume)
        await bus.serve(subjects.MARKET_QUERY_SNAPSHOT, SnapshotQuery, self._snapshot)
        await self._scheduler.start()

    async def stop(self) -> None:
        await self._scheduler.stop()
        await self._source.aclose()

    def readiness(self) -> dict[str, bool]:
        return {"scheduler": self._scheduler.running}

    async def _status(self, _: SchedulerCommand) -> SchedulerStatus:
        return self._scheduler.status()

    async def _trigger(self, _: SchedulerCommand) -> SchedulerStatus:
        try:
            return await self._scheduler.trigger()
        except CycleRunning as exc:
            raise BadRequest(str(exc)) from exc

    async def _pause(self, _: SchedulerCommand) -> SchedulerStatus:
        return self._scheduler.pause()

    async def _resume(self, _: SchedulerCommand) -> SchedulerStatus:
        return self._scheduler.resume()

    async def _snapshot(self, _: SnapshotQuery) -> SnapshotReply:
        return SnapshotReply(snapshot=self._scheduler.latest_snapshot)


async def build(ctx: ServiceContext) -> MarketService:
    settings = ctx.settings
    source = create_source(settings, ctx.clock.now())
    agents = tuple(a.id for a in load_lineup(settings.agents_file).active)
    scheduler = CycleScheduler(
        bus=ctx.bus,
        clock=ctx.clock,
        source=source,
        config=SchedulerConfig.from_settings(settings, agents),
        metrics=MarketMetrics(ctx.registry),
    )
    return MarketService(ctx.bus, scheduler, source)
