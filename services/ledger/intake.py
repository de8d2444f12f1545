"""The books' inputs in stream order: cycles, snapshots, ticks and verdicts, a batch at a time.

One durable consumer reads the four subjects in the order JetStream stored them, so the
books take effects in the order the market and risk published them: a verdict after its
cycle and its snapshot (an agent answers a snapshot only once it is published), a tick
before the cycle that followed it. A verdict whose cycle or snapshot is missing then never
will come, and is recorded with its trades refused instead of waiting.

The books' "now" is the wall clock, except in a replay (``data_time``): a tick is booked
at its time, a snapshot at its time and a verdict at the time risk judged it (its
snapshot's), so the same data gives the same books to the timestamp.

Each batch commits in one transaction, with every message's id recorded in it
(``processed_messages``) and the stream position reached (``consumer_positions``): the
ledger resumes right after it on start, so the order holds across a crash too (JetStream
would redeliver a dead process's unacknowledged messages only after newer ones), and a
message applied twice changes nothing anyway. A message refused for good (a verdict of
an agent without an account, or on another agent's subject, a type the books do not take)
is refused before it writes anything and dead-lettered alone, the rest of the batch
applied (no savepoint per message: two round trips each); should a write fail for good
all the same, the batch rolls back and the bus applies its messages one by one. Postgres
unavailable fails the whole batch, which the bus keeps and retries in place, in the same
order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from services.common.bus import Delivery, PermanentError
from services.common.consumers import Item
from services.common.contracts import (
    CycleCompleted,
    CycleStarted,
    MarketSnapshot,
    MarketTick,
    Verdict,
)
from services.common.lineup import Lineup
from services.ledger import sql
from services.ledger.database import acquire, unavailable_is_transient
from services.ledger.marks import MarkOutcome, SnapshotMarks, TickOutcome, TickProcessor
from services.ledger.sql.cycles import NewCycle
from services.ledger.verdicts import Applied, VerdictApplier


@dataclass
class Effects:
    """What one batch did, for metrics and notifications after its commit."""

    verdicts: list[Applied] = field(default_factory=list)
    ticks: list[TickOutcome] = field(default_factory=list)
    completed: list[CycleCompleted] = field(default_factory=list)
    snapshot_liquidations: int = 0
    snapshots: list[str] = field(default_factory=list)
    """The cycles whose snapshots are booked (by this batch or before it)."""
    duplicates: int = 0
    marked: bool = False  # some account's equity moved
    refused: dict[int, str] = field(default_factory=dict)

    @property
    def events(self) -> bool:
        """True when the outbox got something to publish."""
        return bool(
            self.verdicts
            or self.snapshot_liquidations
            or any(t.exits or t.funding_payments for t in self.ticks)
        )


def same_agent(delivery: Delivery, agent_id: str, what: str) -> None:
    """A per-agent subject and the agent its message names must agree."""
    speaker = delivery.last_token
    if agent_id != speaker:
        raise PermanentError(
            f"{what} names agent {agent_id!r} but came on the subject of {speaker!r}"
        )


class BookIntake:
    def __init__(
        self,
        pool: asyncpg.Pool,
        lineup: Lineup,
        applier: VerdictApplier,
        ticks: TickProcessor,
        consumer: str,
    ) -> None:
        self._pool = pool
        self._lineup = lineup
        self._applier = applier
        self._ticks = ticks
        self._consumer = consumer

    async def apply(self, items: Sequence[Item], now: datetime) -> Effects:
        """Apply ``items`` in order, in one transaction (TransientError: Postgres is away)."""
        with unavailable_is_transient():
            async with acquire(self._pool) as conn, conn.transaction():
                return await self.apply_in(conn, items, now)

    async def apply_in(
        self, conn: asyncpg.Connection, items: Sequence[Item], now: datetime
    ) -> Effects:
        """:meth:`apply` inside the caller's transaction."""
        effects = Effects()
        # Where to resume after a crash: right after this batch, whatever becomes of each
        # message in it (applied, a copy, or refused and dead-lettered).
        fresh = await sql.cycles.claim_and_advance(
            conn,
            [delivery.msg_id for _, delivery in items],
            self._consumer,
            max(d.stream_sequence for _, d in items),
        )
        try:
            await self._in_order(conn, items, fresh, now, effects)
        except asyncpg.ForeignKeyViolationError as exc:
            # A write naming an agent the ledger has no account for: the batch is rolled
            # back and the bus applies its messages one by one, this one then
            # dead-lettered alone.
            raise PermanentError(str(exc)) from exc
        return effects

    async def _in_order(
        self,
        conn: asyncpg.Connection,
        items: Sequence[Item],
        fresh: set[str],
        now: datetime,
        effects: Effects,
    ) -> None:
        """Apply the messages of ``fresh`` ids in order: consecutive ticks and snapshots
        (and the cycle starts between them, which do not touch the books) as one run of
        marks, consecutive verdicts together."""
        run: list[MarketTick | SnapshotMarks] = []
        verdicts: list[tuple[int, Verdict]] = []
        # A cycle's start waits for the message after it: its snapshot, as in a replay's
        # lot, is stored with it in one statement; anything else comes after it is stored.
        start: NewCycle | None = None
        for index, (message, delivery) in enumerate(items):
            if delivery.msg_id not in fresh:
                effects.duplicates += 1
                continue
            fresh.discard(delivery.msg_id)  # a second copy in this batch is one too
            if isinstance(message, MarketTick | MarketSnapshot | CycleStarted):
                await self._verdicts_run(conn, verdicts, now, effects)
                if (
                    isinstance(message, MarketSnapshot)
                    and start is not None
                    and start.started.cycle_id == message.cycle_id
                ):
                    await self._snapshot(conn, message, run, now, effects, start=start)
                    start = None
                    continue
                await self._store(conn, start)
                start = None
                if isinstance(message, CycleStarted):
                    expected = message.agents or tuple(a.id for a in self._lineup.active)
                    start = NewCycle(message, expected, now)
                elif isinstance(message, MarketSnapshot):
                    await self._snapshot(conn, message, run, now, effects)
                else:
                    run.append(message)
                continue
            await self._store(conn, start)
            start = None
            await self._marks_run(conn, run, now, effects)
            try:
                if isinstance(message, Verdict):
                    agent = message.decision.agent_id
                    same_agent(delivery, agent, f"verdict {message.verdict_id}")
                    verdicts.append((index, message))
                    continue
                raise PermanentError(f"the books take no {type(message).__name__}")
            except PermanentError as exc:
                # Raised before the message wrote anything: the rest go on.
                effects.refused[index] = str(exc)
        await self._store(conn, start)
        await self._marks_run(conn, run, now, effects)
        await self._verdicts_run(conn, verdicts, now, effects)

    @staticmethod
    async def _store(conn: asyncpg.Connection, start: NewCycle | None) -> None:
        """A cycle's start that no snapshot of its own followed, stored alone."""
        if start is not None:
            await sql.cycles.insert_cycle(conn, start)

    async def _snapshot(
        self,
        conn: asyncpg.Connection,
        message: MarketSnapshot,
        run: list[MarketTick | SnapshotMarks],
        now: datetime,
        effects: Effects,
        *,
        start: NewCycle | None = None,
    ) -> None:
        """A snapshot is stored (with its cycle's ``start``, when that came right before
        it) and joins the run of marks."""
        effects.snapshots.append(message.cycle_id)
        # A cycle has one snapshot: another copy must not re-mark the books.
        if not await sql.cycles.store_snapshot(conn, message, start):
            effects.duplicates += 1
            return
        run.append(
            SnapshotMarks(
                cycle_id=message.cycle_id,
                marks={s.symbol: s.mark_price for s in message.symbols},
                at=message.taken_at,
                now=message.taken_at if message.data_time else now,
            )
        )

    async def _marks_run(
        self,
        conn: asyncpg.Connection,
        run: list[MarketTick | SnapshotMarks],
        now: datetime,
        effects: Effects,
    ) -> None:
        if not run:
            return
        for outcome in await self._ticks.apply_run(conn, run, now):
            if isinstance(outcome, MarkOutcome):
                effects.snapshot_liquidations += outcome.liquidations
                effects.marked = True
                continue
            if outcome.duplicate:
                effects.duplicates += 1
                continue
            effects.ticks.append(outcome)
            effects.marked = effects.marked or bool(outcome.agents)
        run.clear()

    async def _verdicts_run(
        self,
        conn: asyncpg.Connection,
        verdicts: list[tuple[int, Verdict]],
        now: datetime,
        effects: Effects,
    ) -> None:
        if not verdicts:
            return
        outcomes = await self._applier.apply(conn, [v for _, v in verdicts], now)
        for (index, _), applied in zip(verdicts, outcomes, strict=True):
            if isinstance(applied, PermanentError):
                effects.refused[index] = str(applied)
            elif applied.duplicate:
                effects.duplicates += 1
            else:
                effects.verdicts.append(applied)
                if applied.cycle_completed is not None:
                    effects.completed.append(applied.cycle_completed)
        verdicts.clear()
