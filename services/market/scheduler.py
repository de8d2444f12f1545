"""The cycle scheduler: one trading cycle at a time, on a fixed grid of slots.

Semantics (SPEC.md's APScheduler job, made explicit; the slot arithmetic is in
:mod:`services.market.schedule`):
- one cycle at a time: the next starts only after ``arena.cycle.completed`` for the
  current one arrived, or its decision deadline plus a grace period passed (failed);
- missed slots coalesce, a slot later than ``misfire_grace`` is skipped and counted;
- pause stops new cycles (a running one finishes), resume continues on the grid, a
  manual trigger starts a cycle now unless one is running.
Ticks are published on their own timer, so prices keep moving while agents decide.

With a paced source (replay) the clock follows the data instead: a cycle starts as soon
as the previous one completed (or failed), after the ticks of one cycle period of bars;
timestamps are the data's, while decision deadlines stay on the wall clock, since agents
and the ledger wait in real time.

Restarts and NATS outages: see :mod:`services.market.keeper`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime

from services.common.bus import Bus, Delivery
from services.common.clock import Clock
from services.common.contracts import (
    CycleCompleted,
    CycleStarted,
    MarketTick,
    SchedulerStatus,
)
from services.market import cycle as cycles
from services.market.cycle import COMPLETIONS, CycleRunning, RunningCycle
from services.market.keeper import StateKeeper
from services.market.metrics import MarketMetrics
from services.market.recent import RecentSnapshots
from services.market.schedule import SchedulerConfig, bars_until, new_id, next_slot, plan_run
from services.market.source import MarketSource, PacedSource, ResumableSource
from services.market.state import CycleStats, MarketState
from services.market.state_store import StateStore
from services.market.ticks import TakenBars, TickPublisher

log = logging.getLogger(__name__)


class CycleScheduler:
    def __init__(
        self,
        *,
        bus: Bus,
        clock: Clock,
        source: MarketSource,
        config: SchedulerConfig,
        metrics: MarketMetrics,
        store: StateStore,
        paced: PacedSource | None = None,
        resumable: ResumableSource | None = None,
    ) -> None:
        self._bus = bus
        self._clock = clock
        self._source = source
        self._config = config
        self._metrics = metrics
        self._paced = paced
        self._wake = asyncio.Event()
        self._stopped = asyncio.Event()
        self._start_lock = asyncio.Lock()
        # Snapshots and ticks both read the source; one at a time keeps a snapshot coherent.
        self._source_lock = asyncio.Lock()
        self._ticks = TickPublisher(
            bus=bus,
            clock=clock,
            source=source,
            source_lock=self._source_lock,
            metrics=metrics,
            stopped=self._stopped,
            paced=paced,
            resumable=resumable,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._paused = False
        self._sequence = 0
        self._stats = CycleStats()
        self._current: RunningCycle | None = None
        self._next_run_at: datetime | None = None
        self._plan_restored = False
        self._replay_done = False
        self._snapshots = RecentSnapshots()
        self._keeper = StateKeeper(
            store=store, state=self._state, source=source, resumable=resumable, ticks=self._ticks
        )

    # ------------------------------------------------------------ lifecycle

    async def restore(self) -> None:
        """Take up the saved state, or record a fresh one; before :meth:`start`."""
        saved, source_resumed = await self._keeper.load()
        if saved is not None:
            self._paused = saved.paused
            self._sequence = saved.sequence
            self._stats = CycleStats.restored(saved.stats)
            if saved.current is not None:
                self._current = RunningCycle.restored(saved.current, self._clock)
            if source_resumed:
                self._next_run_at = saved.next_run_at
                self._plan_restored = True
        await self._keeper.save()

    async def start(self) -> None:
        await self._bus.consume(COMPLETIONS, CycleCompleted, self._on_completed)
        if self._paced is not None:
            if not self._plan_restored:
                self._next_run_at = self._paced.now()
                self._ticks.name_run(new_id(self._paced.now(), suffix=f"s{self._sequence}"))
            self._replay_done = self._next_run_at is None
            self._tasks = [asyncio.create_task(self._run_paced(), name="market:replay")]
            return
        if self._next_run_at is None:
            self._next_run_at = self._clock.now()
        # The first tick is a period after the start, not after the task first runs.
        ticks = self._ticks.run_live(
            first_at=self._clock.monotonic() + self._config.tick_seconds,
            period=self._config.tick_seconds,
            max_wait=self._config.max_wait_seconds,
            after=self._keeper.save,
        )
        self._tasks = [
            asyncio.create_task(self._run(), name="market:scheduler"),
            asyncio.create_task(ticks, name="market:ticks"),
        ]

    async def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    @property
    def running(self) -> bool:
        return bool(self._tasks) and not any(t.done() for t in self._tasks)

    @property
    def snapshots(self) -> RecentSnapshots:
        """The latest snapshot, and the full ones of recent cycles by id."""
        return self._snapshots

    @property
    def latest_tick(self) -> MarketTick | None:
        return self._ticks.latest

    # ------------------------------------------------------------ control

    def status(self) -> SchedulerStatus:
        stats = self._stats
        active = self.running and not self._paused
        return SchedulerStatus(
            running=self.running,
            paused=self._paused,
            source=self._source.name,
            cycle_seconds=self._config.cycle_seconds,
            current_cycle_id=self._current.cycle_id if self._current else None,
            next_run_at=self._next_run_at if active else None,
            cycles_started=stats.started,
            cycles_completed=stats.completed,
            cycles_failed=stats.failed,
            cycles_skipped=stats.skipped,
            last_duration_seconds=stats.last_duration,
            mean_duration_seconds=stats.mean_duration,
        )

    async def pause(self) -> SchedulerStatus:
        if not self._paused:
            self._paused = True
            log.info("scheduler paused")
            self._wake.set()
            await self._keeper.save()
        return self.status()

    async def resume(self) -> SchedulerStatus:
        if self._paused:
            self._paused = False
            if self._paced is not None:
                log.info("replay resumed")
            else:
                now = self._clock.now()
                # Slots that fell inside the pause were not missed, so they are not skipped.
                due = self._next_run_at or now
                self._next_run_at = next_slot(due, now, self._config.cycle_seconds)
                log.info("scheduler resumed, next cycle at %s", self._next_run_at.isoformat())
            self._wake.set()
            await self._keeper.save()
        return self.status()

    async def trigger(self) -> SchedulerStatus:
        """Start a cycle now; raises :class:`CycleRunning` when one is in progress."""
        async with self._start_lock:
            if self._current is not None:
                raise CycleRunning(f"cycle {self._current.cycle_id} is still running")
            if self._stopped.is_set():
                raise CycleRunning("the scheduler is stopping")
            log.info("manual trigger")
            await self._begin_cycle()
        self._wake.set()
        return self.status()

    # ------------------------------------------------------------ cycles

    async def _run(self) -> None:
        config = self._config
        while not self._stopped.is_set():
            self._wake.clear()
            if await self._cycle_running():
                continue
            if self._paused or self._next_run_at is None:
                await self._sleep(None)
                continue
            now = self._clock.now()
            wait = (self._next_run_at - now).total_seconds()
            if wait > 0:
                await self._sleep(wait)
                continue
            plan = plan_run(self._next_run_at, now, config.cycle_seconds, config.misfire_grace)
            self._next_run_at = plan.next_due
            if plan.skipped:
                log.warning("skipping %d missed cycle slot(s)", plan.skipped)
                self._stats.skipped += plan.skipped
                self._metrics.cycles.labels("skipped").inc(plan.skipped)
            if plan.run_now:
                async with self._start_lock:
                    if self._current is None:
                        await self._begin_cycle()
            else:
                await self._keeper.save()

    async def _run_paced(self) -> None:
        """Replay: cycles back to back, each after one cycle period of bars played as ticks."""
        paced = self._paced
        assert paced is not None
        bars_per_cycle = max(1, round(self._config.cycle_seconds / paced.step.total_seconds()))
        while not self._stopped.is_set():
            self._wake.clear()
            if await self._cycle_running():
                continue
            if self._paused or self._replay_done:
                await self._sleep(None)
                continue
            due = self._next_run_at
            if due is None:
                self._replay_done = True
                log.warning(
                    "replay finished at %s after %d cycles", paced.now().isoformat(), self._sequence
                )
                continue
            bars: TakenBars | None = None
            if paced.now() < due:
                # The bars up to the next cycle, published with its start and snapshot; a
                # pause or stop acts between cycles.
                bars = await self._ticks.take_bars(
                    bars_until(paced.now(), due, paced.step, paced.remaining())
                )
                if bars.failure is not None:
                    log.error(
                        "the replay cannot play its next bar; it stops here",
                        exc_info=bars.failure,
                    )
                    await self._ticks.publish_taken(bars)  # the bars read before it
                    self._replay_done = True
                    await self._keeper.save()
                    continue
            async with self._start_lock:
                if self._current is None:
                    more = paced.remaining() >= bars_per_cycle
                    self._next_run_at = paced.now() + bars_per_cycle * paced.step if more else None
                    await self._begin_cycle(bars)
                    continue
            if bars is not None:  # a manual trigger started a cycle meanwhile
                await self._ticks.publish_taken(bars)

    async def _cycle_running(self) -> bool:
        """True while a cycle runs; past its deadline plus grace it is counted failed."""
        cycle = self._current
        if cycle is None:
            return False
        remaining = cycle.fail_at_mono - self._clock.monotonic()
        if remaining > 0:
            await self._sleep(remaining)
            return True
        log.warning(
            "cycle %s: no completion by its deadline plus grace, counted failed", cycle.cycle_id
        )
        self._finish(cycle, completed=False)
        await self._keeper.save()
        return True

    async def _begin_cycle(self, bars: TakenBars | None = None) -> None:
        """Start a cycle; a replay's ``bars`` (read from the source, not yet published) go
        out before its start, in the same lot."""
        config = self._config
        wall = self._clock.now()
        now = self._ticks.market_now()
        data_time = self._paced is not None
        # A replay's ids and deadline follow the data (the sequence keeps a second replay
        # of the same data apart); the wall-clock deadline still bounds how long it waits.
        cycle_id = new_id(now, suffix=f"{self._sequence + 1:06x}" if data_time else None)
        deadline = wall + config.decision_window
        announced_deadline = (now if data_time else wall) + config.decision_window
        snapshot = await cycles.take_snapshot(
            self._source,
            self._source_lock,
            cycle_id=cycle_id,
            taken_at=now,
            deadline=announced_deadline,
            data_time=data_time,
        )
        if snapshot is None:
            if bars is not None:
                await self._ticks.publish_taken(bars)
            self._count_failed()
            await self._keeper.save()
            return
        self._sequence += 1
        started = CycleStarted(
            cycle_id=cycle_id,
            sequence=self._sequence,
            started_at=now,
            decision_deadline=announced_deadline,
            symbols=tuple(s.symbol for s in snapshot.symbols),
            agents=config.agents,
            data_time=data_time,
        )
        fail_at = deadline + config.completion_grace
        cycle = RunningCycle.opened(cycle_id, self._sequence, deadline, fail_at, self._clock)
        # Current before publishing, so a completion arriving right away is not missed.
        self._current = cycle
        self._stats.started += 1
        self._snapshots.keep(snapshot)
        if bars is None:
            announced = await cycles.announce(
                bus=self._bus,
                clock=self._clock,
                started=started,
                snapshot=snapshot,
                record=self._keeper.save_strictly,
                stopped=self._stopped,
                give_up_at=deadline,
            )
        else:
            announced = await cycles.announce_after_bars(
                bus=self._bus, started=started, snapshot=snapshot, bars=bars, stopped=self._stopped
            )
            if announced:
                self._ticks.record_bars(bars)
                await self._keeper.save()
        if not announced:
            if self._stopped.is_set():
                return  # a restart takes up what was recorded
            if self._current is cycle:
                self._current = None
                self._count_failed()
            await self._keeper.save()
            return
        self._snapshots.latest = snapshot
        log.info(
            "cycle %s started",
            cycle_id,
            extra={"cycle_id": cycle_id, "deadline": deadline.isoformat()},
        )

    async def _on_completed(self, message: CycleCompleted, _: Delivery) -> None:
        cycle = self._current
        if cycle is None or message.cycle_id != cycle.cycle_id:
            log.info("completion of cycle %s ignored: not the current cycle", message.cycle_id)
            return
        self._finish(cycle, completed=True)
        await self._keeper.save()

    def _finish(self, cycle: RunningCycle, *, completed: bool) -> None:
        if self._current is not cycle:
            return
        self._current = None
        if completed:
            duration = self._clock.monotonic() - cycle.started_mono
            self._stats.complete(duration)
            self._metrics.cycles.labels("completed").inc()
            self._metrics.cycle_duration.observe(duration)
            log.info(
                "cycle %s completed in %.2fs",
                cycle.cycle_id,
                duration,
                extra={"cycle_id": cycle.cycle_id},
            )
        else:
            self._count_failed()
        self._wake.set()

    def _count_failed(self) -> None:
        self._stats.failed += 1
        self._metrics.cycles.labels("failed").inc()

    async def _sleep(self, seconds: float | None) -> None:
        """Wait until woken (trigger, pause, resume, completion, stop) or ``seconds`` passed."""
        cap = self._config.max_wait_seconds
        timeout = cap if seconds is None else min(seconds, cap)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=timeout)

    def _state(self) -> MarketState:
        return MarketState(
            saved_at=self._clock.now(),
            paused=self._paused,
            sequence=self._sequence,
            current=self._current.saved() if self._current else None,
            next_run_at=self._next_run_at,
            stats=self._stats.saved(),
            source=self._ticks.saved(),
        )
