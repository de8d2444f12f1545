"""The market service: a source, the cycle scheduler, and the requests they answer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from services.common import channels
from services.common.bus import BadRequest, Bus, NotFound
from services.common.contracts import (
    Prices,
    PricesQuery,
    SchedulerCommand,
    SchedulerStatus,
    SnapshotQuery,
    SnapshotReply,
    SymbolQuery,
    SymbolReply,
)
from services.common.lineup import load_lineup
from services.common.runner import ServiceContext
from services.market.cycle import CycleRunning
from services.market.metrics import MarketMetrics
from services.market.prices import latest_prices
from services.market.replay import ReplaySource
from services.market.schedule import MAX_WAIT_SECONDS, SchedulerConfig
from services.market.scheduler import CycleScheduler
from services.market.selection import create_source
from services.market.simulator import SimulatorSource
from services.market.source import MarketSource
from services.market.state_store import StateStore


class MarketService:
    def __init__(
        self,
        bus: Bus,
        scheduler: CycleScheduler,
        source: MarketSource,
        symbols: tuple[str, ...],
    ) -> None:
        self._bus = bus
        self._scheduler = scheduler
        self._source = source
        self._symbols = symbols

    async def start(self) -> None:
        # The saved state first, so the first status answered is the restored one.
        await self._scheduler.restore()
        bus = self._bus
        await bus.serve_channel(channels.SCHEDULER_STATUS, self._status)
        await bus.serve_channel(channels.SCHEDULER_TRIGGER, self._trigger)
        await bus.serve_channel(channels.SCHEDULER_PAUSE, self._pause)
        await bus.serve_channel(channels.SCHEDULER_RESUME, self._resume)
        await bus.serve_channel(channels.MARKET_QUERY_SNAPSHOT, self._snapshot)
        await bus.serve_channel(channels.MARKET_QUERY_PRICES, self._prices)
        await bus.serve_channel(channels.MARKET_QUERY_SYMBOL, self._symbol)
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
        return await self._scheduler.pause()

    async def _resume(self, _: SchedulerCommand) -> SchedulerStatus:
        return await self._scheduler.resume()

    async def _snapshot(self, query: SnapshotQuery) -> SnapshotReply:
        if query.cycle_id is None:
            return SnapshotReply(snapshot=self._scheduler.snapshots.latest)
        snapshot = self._scheduler.snapshots.of(query.cycle_id)
        if snapshot is None:
            raise NotFound(
                f"the market no longer holds the snapshot of cycle {query.cycle_id!r} "
                "(it keeps its recent cycles', since it last started)"
            )
        return SnapshotReply(snapshot=snapshot)

    async def _prices(self, _: PricesQuery) -> Prices:
        scheduler = self._scheduler
        return latest_prices(self._source.name, scheduler.snapshots.latest, scheduler.latest_tick)

    async def _symbol(self, query: SymbolQuery) -> SymbolReply:
        symbol = query.symbol.strip().upper()
        if symbol not in self._symbols:
            raise NotFound(
                f"symbol {query.symbol!r} is not traded here; configured symbols: "
                f"{', '.join(self._symbols)}"
            )
        snapshot = self._scheduler.snapshots.latest
        if snapshot is None:
            raise NotFound(f"no market snapshot yet for {symbol}: the first cycle has not started")
        data = snapshot.symbol(symbol)
        if data is None:
            reason = snapshot.unavailable.get(symbol, "missing from the latest snapshot")
            raise NotFound(f"{symbol} is unavailable in cycle {snapshot.cycle_id}: {reason}")
        return SymbolReply(cycle_id=snapshot.cycle_id, taken_at=snapshot.taken_at, symbol=data)


async def build(
    ctx: ServiceContext,
    *,
    max_wait_seconds: float = MAX_WAIT_SECONDS,
    store: Callable[[Bus], StateStore] = StateStore,
) -> MarketService:
    """The market as configured; ``max_wait_seconds`` bounds how late a clock jump is
    noticed, ``store`` keeps its state (in the bus's key-value bucket)."""
    settings = ctx.settings
    source = await create_source(settings, ctx.clock)
    agents = tuple(a.id for a in load_lineup(settings.agents_file).active)
    config = SchedulerConfig.from_settings(settings, agents)
    scheduler = CycleScheduler(
        bus=ctx.bus,
        clock=ctx.clock,
        source=source,
        config=replace(config, max_wait_seconds=max_wait_seconds),
        metrics=MarketMetrics(ctx.registry),
        store=store(ctx.bus),
        paced=source if isinstance(source, ReplaySource) else None,
        resumable=source if isinstance(source, SimulatorSource | ReplaySource) else None,
    )
    return MarketService(ctx.bus, scheduler, source, settings.symbols)
