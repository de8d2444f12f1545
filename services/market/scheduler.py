"""The cycle scheduler: one trading cycle at a time, on a fixed grid of slots.

Semantics (SPEC.md's APScheduler job, made explicit):
- a cycle starts on a slot of the grid ``first start + k * cycle_seconds``;
- one cycle at a time: the next starts only after ``arena.cycle.completed`` for the
  current one arrived, or its decision deadline plus a grace period passed (failed);
- missed slots coalesce: when the scheduler gets free after several slots passed, only
  the latest runs, and only if it is at most ``misfire_grace`` late; every slot not run
  is counted as skipped (it never runs back-to-back to catch up);
- pause stops new cycles (a running one finishes), resume continues on the grid, a
  manual trigger starts a cycle now unless one is running.
Ticks are published on their own timer, so prices keep moving while agents decide.

With a paced source (replay) the clock follows the data instead: a cycle starts as soon
as the previous one completed (or failed), after the ticks of one cycle period of bars;
timestamps are the data's, while decision deadlines stay on the wall clock, since agents
and the ledger wait in real time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.common import subjects
from services.common.bus import Bus
from services.common.clock import Clock
from services.common.contracts import (
    CycleCompleted,
    CycleStarted,
    MarketSnapshot,
    MarketTick,
    SchedulerStatus,
)
from services.common.settings import Settings
from services.market.metrics import MarketMetrics
from services.market.snapshot import build_snapshot
from services.market.source import MarketSource, PacedSource

log = logging.getLogger(__name__)

MISFIRE_GRACE = timedelta(seconds=30)


@dataclass(frozen=True)
class SchedulerConfig:
    cycle_seconds: float
    decision_window: timedelta
    completion_grace: timedelta
    tick_seconds: float
    symbols: tuple[str, ...]
    agents: tuple[str, ...]
    misfire_grace: timedelta = MISFIRE_GRACE
    # Longest single wait: waits are re-evaluated at least this often, so a clock that
    # jumps (suspend, NTP, a manual clock in tests) is noticed.
    max_wait_seconds: float = 1.0

    @classmethod
    def from_settings(cls, settings: Settings, agents: tuple[str, ...]) -> SchedulerConfig:
        # The ledger completes a cycle at its deadline at the latest; the grace only
        # covers a slow or restarting ledger: half the time left before the next slot,
        # at least 1 s (for a message to arrive), at most 30 s.
        left = settings.cycle_seconds - settings.decision_window.total_seconds()
        grace = min(max(left / 2, 1.0), 30.0)
        return cls(
            cycle_seconds=settings.cycle_seconds,
            decision_window=settings.decision_window,
            completion_grace=timedelta(seconds=grace),
            tick_seconds=settings.tick_seconds,
            symbols=settings.symbols,
            agents=agents,
        )


@dataclass(frozen=True)
class RunPlan:
    run_now: bool
    next_due: datetime
    skipped: int


def plan_run(due: datetime, now: datetime, period: float, misfire_grace: timedelta) -> RunPlan:
    """What to do at ``now`` with a slot ``due`` that is not in the future (pure).

    Every slot up to ``now`` collapses into the latest one, which runs if it is at most
    ``misfire_grace`` late; the others, and the latest too when it is later, are skipped.
    """
    late = (now - due).total_seconds()
    if late < 0:
        return RunPlan(run_now=False, next_due=due, skipped=0)
    passed = math.floor(late / period)
    latest = due + timedelta(seconds=passed * period)
    next_due = latest + timedelta(seconds=period)
    if now - latest <= misfire_grace:
        return RunPlan(run_now=True, next_due=next_due, skipped=passed)
    return RunPlan(run_now=False, next_due=next_due, skipped=passed + 1)


def next_slot(due: datetime, now: datetime, period: float) -> datetime:
    """The first slot of the grid through ``due`` that is not before ``now``."""
    if due >= now:
        return due
    steps = math.ceil((now - due).total_seconds() / period)
    return due + timedelta(seconds=steps * period)


def new_id(now: datetime, *, precise: bool = False) -> str:
    """A time-ordered id, unique across restarts thanks to its random suffix."""
    stamp = now.strftime("%Y%m%dT%H%M%S%fZ" if precise else "%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


class CycleRunning(RuntimeError):
    """A manual trigger arrived while a cycle is running."""


@dataclass
class _Cycle:
    cycle_id: str
    started_mono: float
    fail_at_mono: float


class CycleScheduler:
    def __init__(
        self,
        *,
        bus: Bus,
        clock: Clock,
        source: MarketSource,
        config: SchedulerConfig,
        metrics: MarketMetrics,
        paced: PacedSource | None = None,
    ) -> None:
        self._paced = paced
        self._replay_done = False
        self._bus = bus
        self._clock = clock
        self._source = source
        self._config = config
        self._metrics = metrics
        self._wake = asyncio.Event()
        self._stopped = asyncio.Event()
        self._start_lock = asyncio.Lock()
        # Snapshots and ticks both read the source; one at a time keeps a snapshot coherent.
        self._source_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._paused = False
        self._current: _Cycle | None = None
        self._next_run_at: datetime | None = None
        self._latest: MarketSnapshot | None = None
        self._latest_tick: MarketTick | None = None
        self._started = 0
        self._completed = 0
        self._failed = 0
        self._skipped = 0
        self._last_duration: float | None = None
        self._total_duration = 0.0

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self._bus.subscribe_core(subjects.CYCLE_COMPLETED, CycleCompleted, self._on_completed)
        if self._paced is not None:
            self._next_run_at = self._paced.now()
            self._tasks = [asyncio.create_task(self._run_paced(), name="market:replay")]
            return
        self._next_run_at = self._clock.now()
        self._tasks = [
            asyncio.create_task(self._run(), name="market:scheduler"),
            asyncio.create_task(self._tick_loop(), name="market:ticks"),
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
    def latest_snapshot(self) -> MarketSnapshot | None:
        return self._latest

    @property
    def latest_tick(self) -> MarketTick | None:
        return self._latest_tick

    @property
    def source_name(self) -> str:
        return self._source.name

    # ------------------------------------------------------------ control

    def status(self) -> SchedulerStatus:
        completed = self._completed
        active = self.running and not self._paused
        return SchedulerStatus(
            running=self.running,
            paused=self._paused,
            source=self._source.name,
            cycle_seconds=self._config.cycle_seconds,
            current_cycle_id=self._current.cycle_id if self._current else None,
            next_run_at=self._next_run_at if active else None,
            cycles_started=self._started,
            cycles_completed=completed,
            cycles_failed=self._failed,
            cycles_skipped=self._skipped,
            last_duration_seconds=self._last_duration,
            mean_duration_seconds=self._total_duration / completed if completed else None,
        )

    def pause(self) -> SchedulerStatus:
        if not self._paused:
            self._paused = True
            log.info("scheduler paused")
            self._wake.set()
        return self.status()

    def resume(self) -> SchedulerStatus:
        if self._paused:
            self._paused = False
            if self._paced is not None:
                log.info("replay resumed")
                self._wake.set()
                return self.status()
            now = self._clock.now()
            # Slots that fell inside the pause were not missed, so they are not skipped.
            due = self._next_run_at or now
            self._next_run_at = next_slot(due, now, self._config.cycle_seconds)
            log.info("scheduler resumed, next cycle at %s", self._next_run_at.isoformat())
            self._wake.set()
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
            cycle = self._current
            if cycle is not None:
                remaining = cycle.fail_at_mono - self._clock.monotonic()
                if remaining <= 0:
                    log.warning(
                        "cycle %s: no completion by its deadline plus grace, counted failed",
                        cycle.cycle_id,
                    )
                    self._finish(cycle, completed=False)
                else:
                    await self._sleep(remaining)
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
                self._skipped += plan.skipped
                self._metrics.cycles.labels("skipped").inc(plan.skipped)
            if plan.run_now:
                async with self._start_lock:
                    if self._current is None:
                        await self._begin_cycle()

    def _market_now(self) -> datetime:
        return self._paced.now() if self._paced is not None else self._clock.now()

    async def _run_paced(self) -> None:
        """Replay: cycles back to back, each after one cycle period of bars played as ticks."""
        paced = self._paced
        assert paced is not None
        bars_per_cycle = max(1, round(self._config.cycle_seconds / paced.step.total_seconds()))
        first = True
        while not self._stopped.is_set():
            self._wake.clear()
            cycle = self._current
            if cycle is not None:
                remaining = cycle.fail_at_mono - self._clock.monotonic()
                if remaining <= 0:
                    log.warning("cycle %s: no completion in time, counted failed", cycle.cycle_id)
                    self._finish(cycle, completed=False)
                else:
                    await self._sleep(remaining)
                continue
            if self._paused or self._replay_done:
                await self._sleep(None)
                continue
            if not first and paced.remaining() < bars_per_cycle:
                self._replay_done = True
                self._next_run_at = None
                log.warning(
                    "replay finished at %s after %d cycles", paced.now().isoformat(), self._started
                )
                continue
            if not first:
                for _ in range(bars_per_cycle):
                    # One lost tick must not end the replay: the next bar carries on.
                    try:
                        await self._publish_tick()
                    except Exception:
                        log.exception("publishing a replayed market tick failed")
            first = False
            async with self._start_lock:
                if self._current is None:
                    await self._begin_cycle()
            if paced.remaining() >= bars_per_cycle:
                self._next_run_at = paced.now() + bars_per_cycle * paced.step

    async def _begin_cycle(self) -> None:
        config = self._config
        wall = self._clock.now()
        now = self._paced.now() if self._paced is not None else wall
        cycle_id = new_id(now)
        deadline = wall + config.decision_window
        try:
            async with self._source_lock:
                data = await self._source.snapshot_data(now)
            snapshot = build_snapshot(
                cycle_id=cycle_id,
                taken_at=now,
                decision_deadline=deadline,
                source=self._source.name,
                data=data,
            )
        except Exception:
            log.exception("cycle %s: could not build the market snapshot", cycle_id)
            self._count_failed()
            return
        started = CycleStarted(
            cycle_id=cycle_id,
            sequence=self._started + 1,
            started_at=now,
            decision_deadline=deadline,
            symbols=tuple(s.symbol for s in snapshot.symbols),
            agents=config.agents,
        )
        mono = self._clock.monotonic()
        grace = (config.decision_window + config.completion_grace).total_seconds()
        cycle = _Cycle(cycle_id, started_mono=mono, fail_at_mono=mono + grace)
        # Current before publishing, so a completion arriving right away is not missed.
        self._current = cycle
        try:
            await self._bus.publish(subjects.CYCLE_STARTED, started, natural_id=cycle_id)
            self._started += 1
            await self._bus.publish(subjects.MARKET_SNAPSHOT, snapshot, natural_id=cycle_id)
        except Exception:
            log.exception("cycle %s: publishing the start or the snapshot failed", cycle_id)
            if self._current is cycle:
                self._current = None
                self._count_failed()
            return
        self._latest = snapshot
        log.info(
            "cycle %s started",
            cycle_id,
            extra={"cycle_id": cycle_id, "deadline": deadline.isoformat()},
        )

    async def _on_completed(self, message: CycleCompleted) -> None:
        cycle = self._current
        if cycle is None or message.cycle_id != cycle.cycle_id:
            log.info("completion of cycle %s ignored: not the current cycle", message.cycle_id)
            return
        self._finish(cycle, completed=True)

    def _finish(self, cycle: _Cycle, *, completed: bool) -> None:
        if self._current is not cycle:
            return
        self._current = None
        if completed:
            duration = self._clock.monotonic() - cycle.started_mono
            self._completed += 1
            self._last_duration = duration
            self._total_duration += duration
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
        self._failed += 1
        self._metrics.cycles.labels("failed").inc()

    async def _sleep(self, seconds: float | None) -> None:
        """Wait until woken (trigger, pause, resume, completion, stop) or ``seconds`` passed."""
        cap = self._config.max_wait_seconds
        timeout = cap if seconds is None else min(seconds, cap)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=timeout)

    # ------------------------------------------------------------ ticks

    async def _tick_loop(self) -> None:
        period = self._config.tick_seconds
        next_at = self._clock.monotonic() + period
        while not self._stopped.is_set():
            delay = next_at - self._clock.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._stopped.wait(), timeout=min(delay, self._config.max_wait_seconds)
                    )
                continue
            # A late tick is not made up for: the next one is a full period away.
            next_at += period
            if next_at <= self._clock.monotonic():
                next_at = self._clock.monotonic() + period
            try:
                await self._publish_tick()
            except Exception:
                log.exception("publishing a market tick failed")

    async def _publish_tick(self) -> None:
        async with self._source_lock:
            prices = await self._source.tick(self._clock.now())
        now = self._market_now()
        tick = MarketTick(tick_id=new_id(now, precise=True), at=now, prices=prices)
        await self._bus.publish(subjects.MARKET_TICK, tick, natural_id=tick.tick_id)
        self._latest_tick = tick
        self._metrics.ticks.inc()
