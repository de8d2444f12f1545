"""A running cycle, and how one is announced even when NATS is down for a moment.

NATS down at a cycle start: the market state naming the new cycle and its sequence is
recorded first, then ``arena.cycle.started`` and the snapshot are published together,
each step retried with back-off until done or the cycle's decision deadline passed. Past the
deadline the cycle is logged as not started and counted failed; the next slot tries
again. Its sequence number stays used: nothing is published before the state is
recorded, so a restart never publishes a sequence twice (a gap is possible). Stopped
meanwhile, the cycle stays recorded as running, and a restarted market waits for its
completion or deadline plus grace like for any other.

A replay publishes a cycle period's bars, the start and the snapshot in one lot, then
records the state (:func:`announce_after_bars`): its ids follow the data, so taking the
same steps again after a restart publishes nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from services.common import subjects
from services.common.bus import Bus, ConsumerSpec, Publication
from services.common.clock import Clock
from services.common.contracts import CycleStarted, MarketSnapshot
from services.market.retry import until_done
from services.market.snapshot import build_snapshot
from services.market.source import MarketSource
from services.market.state import SavedCycle
from services.market.ticks import TakenBars

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


def _announcement(started: CycleStarted, snapshot: MarketSnapshot) -> list[Publication]:
    """The start and the snapshot, in that order; the snapshot without its candles (see
    ``MarketSnapshot.candles_omitted``): the scheduler keeps the full one for whoever asks."""
    cycle_id = started.cycle_id
    return [
        (subjects.CYCLE_STARTED, started, cycle_id),
        (subjects.MARKET_SNAPSHOT, snapshot.without_candles(), cycle_id),
    ]


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
    """Record the state, then publish the start and the snapshot as one lot (one
    acknowledgement); False if not all done by ``give_up_at`` or stopping."""
    cycle_id = started.cycle_id

    def expired() -> bool:
        return clock.now() >= give_up_at

    async def publish() -> None:
        await bus.publish_all(_announcement(started, snapshot))

    for step, attempt in (
        ("recording the market state", record),
        ("publishing its start and snapshot", publish),
    ):
        what = f"cycle {cycle_id}: {step}"
        if not await until_done(attempt, what=what, stopped=stopped, give_up=expired):
            if not stopped.is_set():
                log.error("cycle %s not started: NATS unavailable until its deadline", cycle_id)
            return False
    return True


async def announce_after_bars(
    *,
    bus: Bus,
    started: CycleStarted,
    snapshot: MarketSnapshot,
    bars: TakenBars,
    stopped: asyncio.Event,
) -> bool:
    """A replay: publish the period's bars, then the start and the snapshot, as one lot
    (one acknowledgement; stored in this order, the ledger mostly takes them in one batch);
    retried until published, since bars must not be dropped. False only when stopping.

    The state is recorded after the lot, not before: a replay's ids follow the data, so a
    restart in between publishes the same bars and the same cycle under the same ids,
    and the copies are dropped (JetStream's duplicate window, the ledger's record of the
    messages it applied).
    """
    what = f"{bars.describe()} with cycle {started.cycle_id}'s start and snapshot"

    async def publish() -> None:
        await bus.publish_all([*bars.events(), *_announcement(started, snapshot)])

    return await until_done(publish, what=what, stopped=stopped)
