"""The ledger service: consumers, deadline watcher, outbox relay and queries, wired together.

Every consumed message's effect commits in one transaction with its id in
``processed_messages``; a redelivered or duplicated message therefore changes nothing.

The books' inputs (cycles, snapshots, ticks, verdicts) come through one consumer in
stream order, a batch per transaction (see :mod:`intake`). When Postgres is unavailable
(down, restarting, cutting connections) a batch or message fails with
:class:`TransientError` and is retried with back-off until it applies: nothing is
dead-lettered for it. Every proposed decision is recorded as it goes by, so ``verify``
can name one that never reached the books.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any, TypeVar

import asyncpg

from services.common import channels
from services.common.annual import CYCLES_PER_YEAR_5M, cycles_per_year
from services.common.bus import (
    Bus,
    ConsumerSpec,
    PermanentError,
)
from services.common.channels import Event, Request
from services.common.clock import Clock
from services.common.consumers import Item
from services.common.contracts import CycleCompleted, Message
from services.common.instruments import InstrumentTable, load_instruments
from services.common.lineup import Lineup, load_lineup
from services.common.runner import ServiceContext
from services.common.settings import TradingLimits
from services.common.tasks import cancel_and_wait
from services.ledger import sql
from services.ledger.booked import BookedCycles
from services.ledger.curve_store import CurveKeeper
from services.ledger.cycles import complete_cycle
from services.ledger.database import acquire, create_pool, unavailable_is_transient
from services.ledger.gathering import CycleGathering
from services.ledger.intake import BookIntake, same_agent
from services.ledger.live_evidence import LiveEvidence
from services.ledger.marks import TickProcessor
from services.ledger.metrics import LedgerMetrics
from services.ledger.migrate import apply_migrations
from services.ledger.outbox import OutboxRelay
from services.ledger.queries import LedgerQueries
from services.ledger.retention import Retention, RetentionPolicy
from services.ledger.verdicts import VerdictApplier

log = logging.getLogger(__name__)

# Portfolio requests answered at once (of the pool's eight connections).
PORTFOLIOS_CONCURRENCY = 2
PORTFOLIO_CONCURRENCY = 2

BOOKS_BATCH = 256
Q = TypeVar("Q", bound=Message)
R = TypeVar("R", bound=Message)
T = TypeVar("T")

# The books' inputs, in the order JetStream stored them, a batch per transaction.
BOOK_CHANNELS: tuple[Event[Any], ...] = (
    channels.CYCLE_STARTED,
    channels.MARKET_SNAPSHOT,
    channels.MARKET_TICK,
    channels.DECISION_VERDICT,
)
BOOKS = ConsumerSpec(
    "ledger-books",
    BOOK_CHANNELS[0].subject,
    more_subjects=tuple(channel.subject for channel in BOOK_CHANNELS[1:]),
    ack_wait_seconds=30,
    batch=BOOKS_BATCH,
    max_ack_pending=BOOKS_BATCH,
)
BOOK_TYPES: dict[str, type[Message]] = {ch.subject: ch.message for ch in BOOK_CHANNELS}
# Records nobody waits on: a second's worth in one pull and one statement (a replay's
# cycles would otherwise cost two pulls and a statement per message).
RECORDS_BATCH = 128
RECORDS_LINGER_SECONDS = 1.0
LLM_CALLS = ConsumerSpec(
    "ledger-llm-calls",
    channels.LLM_CALL.subject,
    batch=RECORDS_BATCH,
    linger_seconds=RECORDS_LINGER_SECONDS,
)
# Every decision as proposed, so ``verify`` can tell one that never reached the books.
PROPOSALS = ConsumerSpec(
    "ledger-proposals",
    channels.DECISION_PROPOSED.subject,
    batch=RECORDS_BATCH,
    linger_seconds=RECORDS_LINGER_SECONDS,
)


class LedgerService:
    def __init__(
        self,
        *,
        bus: Bus,
        clock: Clock,
        pool: asyncpg.Pool,
        lineup: Lineup,
        taker_fee_rate: Decimal,
        limits: TradingLimits,
        symbols: tuple[str, ...],
        metrics: LedgerMetrics,
        settle_grace_seconds: float = 5.0,
        watch_interval_seconds: float = 0.25,
        equity_interval_seconds: float = 0.5,
        instruments: InstrumentTable | None = None,
        retention: RetentionPolicy | None = None,
        evidence: LiveEvidence | None = None,
    ) -> None:
        self._bus = bus
        self._clock = clock
        self._pool = pool
        self._metrics = metrics
        self._settle_grace = timedelta(seconds=settle_grace_seconds)
        self._watch_interval = watch_interval_seconds
        self._intake = BookIntake(
            pool,
            lineup,
            VerdictApplier(
                taker_fee_rate, instruments or InstrumentTable(), limits, frozenset(symbols)
            ),
            TickProcessor(taker_fee_rate),
            BOOKS.durable,
        )
        self._booked = BookedCycles()
        self._gathering = CycleGathering()
        self._evidence = evidence or LiveEvidence(pool, CYCLES_PER_YEAR_5M)
        self._queries = LedgerQueries(pool, self._booked, self._evidence)
        self._relay = OutboxRelay(pool, bus, clock, metrics)
        self._curves = CurveKeeper(pool)
        self.retention = Retention(pool, clock, metrics, retention or RetentionPolicy.off())
        self._equity_moved = asyncio.Event()
        self._equity_interval = equity_interval_seconds
        self._tasks: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self._refresh_equity()
        self._tasks = [
            asyncio.create_task(self._relay.run(), name="ledger-outbox-relay"),
            asyncio.create_task(self._watch_deadlines(), name="ledger-deadline-watcher"),
            asyncio.create_task(self.retention.run(), name="ledger-retention"),
            asyncio.create_task(self._curves.run(), name="ledger-equity-curves"),
            asyncio.create_task(self._evidence.run(), name="ledger-live-evidence"),
            asyncio.create_task(self._follow_equity(), name="ledger-equity-gauge"),
        ]
        async with acquire(self._pool) as conn:
            position = await sql.cycles.consumer_position(conn, BOOKS.durable)
        await self._bus.consume_batches(
            BOOKS,
            BOOK_TYPES,
            self._on_books,
            resume_after=position,
            wait_for_more=self._gathering.wait_for_more,
        )
        # Gathered a second at a time, each batch one statement with its claims.
        await self._bus.consume_batches(
            LLM_CALLS, {LLM_CALLS.filter_subject: channels.LLM_CALL.message}, self._on_llm_calls
        )
        await self._bus.consume_batches(
            PROPOSALS,
            {PROPOSALS.filter_subject: channels.DECISION_PROPOSED.message},
            self._on_proposals,
        )
        q = self._queries
        # Every agent process asks for its agents' portfolios each cycle (risk and the
        # gateway for one now and then): with many processes, several at once, within
        # half the pool between the two.
        await self._serve(channels.LEDGER_QUERY_PORTFOLIOS, q.portfolios, PORTFOLIOS_CONCURRENCY)
        await self._serve(channels.LEDGER_QUERY_PORTFOLIO, q.portfolio, PORTFOLIO_CONCURRENCY)
        await self._serve(channels.LEDGER_QUERY_ACCOUNTS, q.accounts)
        await self._serve(channels.LEDGER_QUERY_LEADERBOARD, q.leaderboard)
        await self._serve(channels.LEDGER_QUERY_POSITIONS, q.positions)
        await self._serve(channels.LEDGER_QUERY_TRADES, q.trades)
        await self._serve(channels.LEDGER_QUERY_DECISIONS, q.decisions)
        await self._serve(channels.LEDGER_QUERY_EQUITY, q.equity)
        await self._serve(channels.LEDGER_QUERY_STATS, q.stats)
        await self._serve(channels.LEDGER_QUERY_VERIFY, q.verify)

    async def _serve(
        self,
        channel: Request[Q, R],
        handler: Callable[[Q], Awaitable[R | bytes]],
        concurrency: int = 1,
    ) -> None:
        guarded = _unavailable_is_transient(handler)
        await self._bus.serve_channel(channel, guarded, concurrency=concurrency)

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks.clear()
        self._evidence.close()
        # Send what is committed now rather than at the next start.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._relay.publish_pending(), 5)
        try:
            # Waits for a handler still in its transaction; a stuck one must not block exit.
            await asyncio.wait_for(self._pool.close(), 10)
        except TimeoutError:
            self._pool.terminate()

    def readiness(self) -> dict[str, bool]:
        return {"database": not self._pool.is_closing() and self._pool.get_size() > 0}

    # ------------------------------------------------------------ exactly-once core

    async def _record_all(
        self,
        consumer: str,
        items: Sequence[Item],
        record: Callable[[asyncpg.Connection, str, list[tuple[str, Any]]], Awaitable[int]],
    ) -> Mapping[int, str]:
        """Store what ``items`` carry, each once (claimed by message id), in one statement
        (``record``); returns the items refused for good: one naming another agent than
        its subject's."""
        refused: dict[int, str] = {}
        fresh: list[tuple[str, Any]] = []
        for index, (message, delivery) in enumerate(items):
            agent_id = getattr(message, "agent_id", "")
            try:
                same_agent(delivery, agent_id, f"{type(message).__name__} {delivery.msg_id}")
            except PermanentError as exc:
                refused[index] = str(exc)
                continue
            fresh.append((delivery.msg_id, message))
        with unavailable_is_transient():
            try:
                async with acquire(self._pool) as conn:
                    new = await record(conn, consumer, fresh)
            except asyncpg.ForeignKeyViolationError as exc:
                # An agent the ledger has no account for: retrying cannot help (a batch with
                # one is split, so only that one is dead-lettered).
                raise PermanentError(str(exc)) from exc
        if new < len(fresh):
            self._metrics.duplicates.labels(consumer).inc(len(fresh) - new)
        return refused

    # ------------------------------------------------------------ consumers

    async def _on_books(self, items: Sequence[Item]) -> Mapping[int, str]:
        effects = await self._intake.apply(items, self._clock.now())
        self._booked.booked(effects.snapshots)
        self._gathering.booked(items)
        metrics = self._metrics
        if effects.duplicates:
            metrics.duplicates.labels(BOOKS.durable).inc(effects.duplicates)
        for applied in effects.verdicts:
            metrics.verdicts_applied.inc()
            metrics.positions_opened.inc(applied.opened)
            metrics.positions_closed.inc(applied.closed)
            for code in applied.rejection_codes:
                metrics.rejections.labels(code).inc()
        for outcome in effects.ticks:
            if outcome.stale_symbols:
                metrics.stale_marks.inc(len(outcome.stale_symbols))
            for reason, count in outcome.exits.items():
                metrics.tick_exits.labels(reason).inc(count)
            metrics.funding_payments.inc(outcome.funding_payments)
        if effects.snapshot_liquidations:
            metrics.snapshot_liquidations.inc(effects.snapshot_liquidations)
        for event in effects.completed:
            self._completed(event)
        if effects.events:
            self._relay.wake()
        if effects.verdicts or effects.marked:
            self._equity_moved.set()
        return effects.refused

    async def _on_llm_calls(self, items: Sequence[Item]) -> Mapping[int, str]:
        return await self._record_all(LLM_CALLS.durable, items, sql.decisions.record_llm_calls)

    async def _on_proposals(self, items: Sequence[Item]) -> Mapping[int, str]:
        return await self._record_all(PROPOSALS.durable, items, sql.decisions.record_proposals)

    # ------------------------------------------------------------ deadlines

    async def _watch_deadlines(self) -> None:
        while True:
            try:
                await self.complete_overdue_cycles()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("deadline watcher pass failed, will retry: %r", exc)
            await asyncio.sleep(self._watch_interval)

    async def complete_overdue_cycles(self) -> int:
        """Time out every running cycle whose deadline plus the settle grace has passed."""
        now = self._clock.now()
        async with acquire(self._pool) as conn:
            overdue = await sql.cycles.overdue_cycles(conn, now - self._settle_grace)
        completed = 0
        for cycle_id in overdue:
            async with acquire(self._pool) as conn, conn.transaction():
                event = await complete_cycle(conn, cycle_id, now, deadline_passed=True)
            if event is not None:
                completed += 1
                self._completed(event)
                self._relay.wake()
        return completed

    def _completed(self, event: CycleCompleted | None) -> None:
        if event is None:
            return
        self._gathering.completed(event.cycle_id)
        self._metrics.cycles_completed.labels(str(event.timed_out).lower()).inc()
        self._evidence.cycle_completed()
        log.info(
            "cycle %s completed%s",
            event.cycle_id,
            " (timed out)" if event.timed_out else "",
            extra={"cycle_id": event.cycle_id, "duration_seconds": event.duration_seconds},
        )

    # ------------------------------------------------------------ helpers

    async def _follow_equity(self) -> None:
        """The equity gauge follows the books, read at most every ``equity_interval``: a
        replay books several batches a cycle, each a read of every account otherwise."""
        while True:
            await self._equity_moved.wait()
            self._equity_moved.clear()
            await self._refresh_equity()
            await asyncio.sleep(self._equity_interval)

    async def _refresh_equity(self) -> None:
        try:
            async with acquire(self._pool) as conn:
                rows = await sql.accounts.accounts(conn)
        except Exception as exc:
            log.warning("cannot refresh the equity gauge: %r", exc)
            return
        for row in rows:
            self._metrics.equity.labels(row.agent_id).set(float(row.book.equity))


def _unavailable_is_transient(
    handler: Callable[[Q], Awaitable[T]],
) -> Callable[[Q], Awaitable[T]]:
    """A query that fails because Postgres is down answers "unavailable", not "internal"."""

    async def guarded(request: Q) -> T:
        with unavailable_is_transient():
            return await handler(request)

    return guarded


async def build(ctx: ServiceContext) -> LedgerService:
    """The runner's factory: connect, migrate, open one account per agent of the line-up."""
    settings = ctx.settings
    lineup = load_lineup(settings.agents_file)
    instruments = load_instruments(settings.instruments_file)
    pool = await create_pool(settings, timeout=None)
    try:
        async with acquire(pool) as conn:
            await apply_migrations(conn)
            async with conn.transaction():
                await sql.accounts.upsert_accounts(
                    conn, lineup, settings.initial_balance, ctx.clock.now()
                )
    except BaseException:
        await pool.close()
        raise
    return LedgerService(
        bus=ctx.bus,
        clock=ctx.clock,
        pool=pool,
        lineup=lineup,
        taker_fee_rate=settings.taker_fee_rate,
        limits=settings.limits,
        symbols=settings.symbols,
        metrics=LedgerMetrics(ctx.registry),
        instruments=instruments,
        retention=RetentionPolicy.from_settings(settings),
        evidence=LiveEvidence(pool, cycles_per_year(settings.cycle_seconds)),
    )
