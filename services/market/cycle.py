"""A running cycle, and how one is announced even when NATS is down for a moment.

NATS down at a cycle start: the market state naming the new cycle and its sequence is
recorded first, then ``arena.cycle.started`` and the snapshot are published, each
retried with back-off until done or the cycle's decision deadline passed. Past the
deadline the cycle is logged as not started and counted failed; the next slot tries
again. Its sequence number stays used: nothing is published before the state is
recorded, so a restart never publishes a sequence twice (a gap is possible). Stopped
meanwhile, the cycle stays recorded as running, and a restarted market waits for its
completion or deadline plus grace like for any other.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from services.common import subjects
from services.common.bus import Bus, ConsumerSpec
from services.common.clock import Clock
from services.common.contracts import CycleStarted, MarketSnapshot
from services.market.retry import until_done
from services.market.snapshot import build_snapshot
from services.market.source import MarketSource
from services.market.state import SavedCycle

log = logging.getLogger(__name__)

# The latest completion first: at most one cycle runs, so no older one can matter.
COMPLETIONS = ConsumerSpec(
    "market-completions", subjects.CYCLE_COMPLETED, start="last", ack_wait_seconds=10, batch=1
)


class CycleRunning(RuntimeError):
    """A manual trigger arrived while a cycle is running."""


@dataclass
class RunningCycle:
    cycle_id: str
    sequence: int
    started_at: datetime  # on the wall clock, like the deadlines
    decision_deadline: datetime  # a replay announces one in data time; this bounds the wait
    fail_at: datetime  # no completion by then: failed
    started_mono: float
    fail_at_mono: float

    @classmethod
    def opened(
        cls, cycle_id: str, sequence: int, deadline: datetime, fail_at: datetime, clock: Clock
    ) -> RunningCycle:
        now, mono = clock.now(), clock.monotonic()
        return cls(
            cycle_id,
            sequence,
            now,
            deadline,
            fail_at,
            started_mono=mono,
            fail_at_mono=mono + (fail_at - now).total_seconds(),
        )

    @classmethod
    def restored(cls, saved: SavedCycle, clock: Clock) -> RunningCycle:
        # A new process has a new monotonic clock: re-anchor on the wall clock.
        now, mono = clock.now(), clock.monotonic()
        return cls(
            saved.cycle_id,
            saved.sequence,
            saved.started_at,
            saved.decision_deadline,
            saved.fail_at,
            started_mono=mono - (now - saved.started_at).total_seconds(),
            fail_at_mono=mono + (saved.fail_at - now).total_seconds(),
        )

    def saved(self) -> SavedCycle:
        return SavedCycle.model_validate(self, from_attributes=True)


async def take_snapshot(
    source: MarketSource,
    source_lock: asyncio.Lock,
    *,
    cycle_id: str,
    taken_at: datetime,
    deadline: datetime,
    data_time: bool,
) -> MarketSnapshot | None:
    """The cycle's snapshot, read while no tick reads the source; None (logged) when the
    source cannot give one."""
    try:
        async with source_lock:
            data = await source.snapshot_data(taken_at)
        return build_snapshot(
            cycle_id=cycle_id,
            taken_at=taken_at,
            decision_deadline=deadline,
            source=source.name,
            data=data,
            data_time=data_time,
        )
    except Exception:
        log.exception("cycle %s: could not build the market snapshot", cycle_id)
        return None


async def announce(
    *,
    bus: Bus,
    clock: Clock,
    started: CycleStarted,
    snapshot: MarketSnapshot,
    record: Callable[[], Awaitable[None]],
    stopped: asyncio.Event,
    give_up_at: datetime,
) -> bool:
    """Record the state, then publish the start and the snapshot; False if not all done.

    The snapshot goes out without its candles (see ``MarketSnapshot.candles_omitted``);
    the scheduler keeps the full one for whoever asks.
    """
    cycle_id = started.cycle_id

    def expired() -> bool:
        return clock.now() >= give_up_at

    async def publish_start() -> None:
        await bus.publish(subjects.CYCLE_STARTED, started, natural_id=cycle_id)

    lean = snapshot.without_candles()

    async def publish_snapshot() -> None:
        await bus.publish(subjects.MARKET_SNAPSHOT, lean, natural_id=cycle_id)

    for step, attempt in (
        ("recording the market state", record),
        ("publishing its start", publish_start),
        ("publishing its snapshot", publish_snapshot),
    ):
        what = f"cycle {cycle_id}: {step}"
        if not await until_done(attempt, what=what, stopped=stopped, give_up=expired):
            if not stopped.is_set():
                log.error("cycle %s not started: NATS unavailable until its deadline", cycle_id)
            return False
    return True
