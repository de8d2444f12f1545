"""Market ticks: the source's next step, published as ``arena.market.tick``.

A replayable source (simulator, replay) names its ticks ``<run>-<n>``, the n-th tick of
one uninterrupted run of the source's position: a step taken again after a restart is
the same step under the same id, so JetStream's duplicate window and the ledger's
applied-tick record drop the copy. Other sources (Binance) use time-ordered random ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from services.common import subjects
from services.common.bus import Bus, Publication
from services.common.clock import Clock
from services.common.contracts import MarketTick
from services.market.metrics import MarketMetrics
from services.market.retry import until_done
from services.market.schedule import new_id
from services.market.source import JsonObject, MarketSource, PacedSource, ResumableSource
from services.market.state import SavedSource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TakenBars:
    """A replay's next bars read as ticks, with the source's position after the last of
    them and the source error that ended them early, if one did."""

    ticks: tuple[MarketTick, ...]
    position: JsonObject | None
    failure: Exception | None = None

    def events(self) -> list[Publication]:
        """What :meth:`Bus.publish_all` takes: each tick under its id."""
        return [(subjects.MARKET_TICK, tick, tick.tick_id) for tick in self.ticks]

    def describe(self) -> str:
        return f"publishing ticks {self.ticks[0].tick_id} to {self.ticks[-1].tick_id}"


class TickPublisher:
    def __init__(
        self,
        *,
        bus: Bus,
        clock: Clock,
        source: MarketSource,
        source_lock: asyncio.Lock,
        metrics: MarketMetrics,
        stopped: asyncio.Event,
        paced: PacedSource | None,
        resumable: ResumableSource | None,
    ) -> None:
        self._bus = bus
        self._clock = clock
        self._source = source
        self._lock = source_lock
        self._metrics = metrics
        self._stopped = stopped
        self._paced = paced
        self._resumable = resumable
        self.latest: MarketTick | None = None
        # What is recorded: the ticks taken (published, or skipped on purpose) and the
        # source's position after the last of them.
        self._run = new_id(clock.now())
        self._ticks = 0
        self._position: JsonObject | None = resumable.position() if resumable else None

    def saved(self) -> SavedSource:
        return SavedSource(
            name=self._source.name, run=self._run, ticks=self._ticks, position=self._position
        )

    def restore(self, saved: SavedSource) -> None:
        self._run, self._ticks = saved.run, saved.ticks
        self._position = self._resumable.position() if self._resumable else None

    def name_run(self, run: str) -> None:
        """A fresh replay's ticks are named after its start in the data, not the wall clock."""
        self._run = run

    def market_now(self) -> datetime:
        return self._paced.now() if self._paced is not None else self._clock.now()

    async def publish_next(self) -> bool:
        """Live: take the source's next step and publish it; True when published.

        A tick that cannot be published is skipped, logged and counted: the next one
        carries the price. A source error propagates and takes no step.
        """
        async with self._lock:
            prices = await self._source.tick(self._clock.now())
            count = self._ticks + 1
            now = self.market_now()
            tick_id = self._tick_id(count, now)
            tick = MarketTick(
                tick_id=tick_id, at=now, prices=prices, data_time=self._paced is not None
            )
            try:
                await self._bus.publish(subjects.MARKET_TICK, tick, natural_id=tick_id)
            except Exception as exc:
                log.warning(
                    "tick %s not published, skipped (the next tick carries the price): %r",
                    tick_id,
                    exc,
                )
                self._metrics.ticks_unpublished.inc()
                self._record(count)
                return False
            self._record(count)
            self.latest = tick
            self._metrics.ticks.inc()
            return True

    async def take_bars(self, count: int) -> TakenBars:
        """Replay: the source's next ``count`` steps as ticks, neither published nor
        recorded yet (see :meth:`record_bars`); a source error ends them early, the
        error kept in :attr:`TakenBars.failure`."""
        async with self._lock:
            ticks: list[MarketTick] = []
            position = self._position
            failure: Exception | None = None
            for _ in range(count):
                try:
                    prices = await self._source.tick(self._clock.now())
                except Exception as exc:
                    failure = exc
                    break
                now = self.market_now()
                tick_id = self._tick_id(self._ticks + len(ticks) + 1, now)
                ticks.append(MarketTick(tick_id=tick_id, at=now, prices=prices, data_time=True))
                position = self._resumable.position() if self._resumable else None
            return TakenBars(tuple(ticks), position, failure)

    async def publish_taken(self, bars: TakenBars) -> int:
        """Publish taken bars alone as one lot, retried until published or stopping, and
        record them; how many were published (0 when stopping: not recorded).

        The lot keeps its order in the stream: it is handed to the connection in one go,
        so what the server misses of it when the connection drops is its end, which the
        retry publishes (the rest dropped as copies by their ids).
        """
        if not bars.ticks:
            return 0

        async def publish() -> None:
            await self._bus.publish_all(bars.events())

        if not await until_done(publish, what=bars.describe(), stopped=self._stopped):
            return 0
        self.record_bars(bars)
        return len(bars.ticks)

    def record_bars(self, bars: TakenBars) -> None:
        """Taken bars are published: the next state saved records them."""
        self._ticks += len(bars.ticks)
        self._position = bars.position
        if bars.ticks:
            self.latest = bars.ticks[-1]
        self._metrics.ticks.inc(len(bars.ticks))

    def _tick_id(self, count: int, now: datetime) -> str:
        return f"{self._run}-{count}" if self._resumable else new_id(now, precise=True)

    def _record(self, count: int) -> None:
        self._ticks = count
        self._position = self._resumable.position() if self._resumable else None

    async def run_live(
        self,
        *,
        first_at: float,
        period: float,
        max_wait: float,
        after: Callable[[], Awaitable[None]],
    ) -> None:
        """Tick at ``first_at`` (monotonic), then every ``period`` seconds, until stopped;
        ``after`` each tick.

        Waits are at most ``max_wait`` long, so a clock that jumps is noticed.
        """
        clock = self._clock
        next_at = first_at
        while not self._stopped.is_set():
            delay = next_at - clock.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopped.wait(), timeout=min(delay, max_wait))
                continue
            # A late tick is not made up for: the next one is a full period away.
            next_at += period
            if next_at <= clock.monotonic():
                next_at = clock.monotonic() + period
            try:
                await self.publish_next()
            except Exception:
                log.exception("reading a market tick failed")
            await after()
