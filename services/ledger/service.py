"""The ledger service: consumers, deadline watcher, outbox relay and queries, wired together.

Every consumed message's effect commits in one transaction with its id in
``processed_messages``; a redelivered or duplicated message therefore changes nothing.

When Postgres is unavailable (down, restarting, cutting connections) a handler fails
with :class:`TransientError` and the bus redelivers the message with back-off until it
applies: nothing is dead-lettered for it. Every proposed decision is recorded as it goes
by, so ``verify`` can name one that never reached the books.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any, TypeVar

import asyncpg

from services.common import subjects
from services.common.bus import (
    Bus,
    ConsumerSpec,
    Delivery,
    PermanentError,
    RequestHandler,
    TransientError,
)
from services.common.clock import Clock
from services.common.contracts import (
    AccountsQuery,
    CycleCompleted,
    CycleStarted,
    Decision,
    DecisionsQuery,
    EquityQuery,
    LeaderboardQuery,
    LlmCall,
    MarketSnapshot,
    MarketTick,
    Message,
    PortfolioQuery,
    PositionsQuery,
    StatsQuery,
    TradesQuery,
    Verdict,
    VerifyQuery,
)
from services.common.instruments import InstrumentTable, load_instruments
from services.common.lineup import Lineup, load_lineup
from services.common.runner import ServiceContext
from services.common.settings import TradingLimits
from services.ledger import store
from services.ledger.cycles import complete_cycle
from services.ledger.database import acquire, create_pool, is_unavailable
from services.ledger.marks import MarkOutcome, TickOutcome, TickProcessor, mark_to_market
from services.ledger.metrics import LedgerMetrics
from services.ledger.migrate import apply_migrations
from services.ledger.outbox import OutboxRelay
from services.ledger.queries import LedgerQueries
from services.ledger.retention import Retention, RetentionPolicy
from services.ledger.verdicts import Applied, NotReady, VerdictApplier

log = logging.getLogger(__name__)

T = TypeVar("T")
M = TypeVar("M", bound=Message)

CYCLES = ConsumerSpec("ledger-cycles", subjects.CYCLE_STARTED, ack_wait_seconds=10)
SNAPSHOTS = ConsumerSpec("ledger-snapshots", subjects.MARKET_SNAPSHOT, ack_wait_seconds=10)
# One verdict at a time, in order, even across a crash: a close must follow its open.
VERDICTS = ConsumerSpec(
    "ledger-verdicts",
    subjects.DECISION_VERDICT_ALL,
    ack_wait_seconds=15,
    batch=1,
    max_ack_pending=1,
)
TICKS = ConsumerSpec("ledger-ticks", subjects.MARKET_TICK, ack_wait_seconds=10)
LLM_CALLS = ConsumerSpec("ledger-llm-calls", subjects.LLM_CALL_ALL)
# Every decision as proposed, so ``verify`` can tell one that never reached the books.
PROPOSALS = ConsumerSpec("ledger-proposals", subjects.DECISION_PROPOSED_ALL)
# What announces a cycle's existence and prices: a verdict waits for these to catch up.
INPUTS = (CYCLES, SNAPSHOTS)


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
        input_wait_seconds: float = 8.0,
        instruments: InstrumentTable | None = None,
        retention: RetentionPolicy | None = None,
    ) -> None:
        self._bus = bus
        self._clock = clock
        self._pool = pool
        self._lineup = lineup
        self._metrics = metrics
        self._settle_grace = timedelta(seconds=settle_grace_seconds)
        self._watch_interval = watch_interval_seconds
        # Below VERDICTS.ack_wait_seconds, so a waiting verdict is not redelivered meanwhile.
        self._input_wait = input_wait_seconds
        self._applier = VerdictApplier(
            taker_fee_rate, instruments or InstrumentTable(), limits, frozenset(symbols)
        )
        self._ticks = TickProcessor(taker_fee_rate)
        self._queries = LedgerQueries(pool)
        self._relay = OutboxRelay(pool, bus, clock, metrics)
        self.retention = Retention(pool, clock, metrics, retention or RetentionPolicy.off())
        self._arrival = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self._refresh_equity()
        self._tasks = [
            asyncio.create_task(self._relay.run(), name="ledger-outbox-relay"),
            asyncio.create_task(self._watch_deadlines(), name="ledger-deadline-watcher"),
            asyncio.create_task(self.retention.run(), name="ledger-retention"),
        ]
        await self._bus.consume(CYCLES, CycleStarted, self._on_cycle_started)
        await self._bus.consume(SNAPSHOTS, MarketSnapshot, self._on_snapshot)
        await self._bus.consume(VERDICTS, Verdict, self._on_verdict)
        await self._bus.consume(TICKS, MarketTick, self._on_tick)
        await self._bus.consume(LLM_CALLS, LlmCall, self._on_llm_call)
        await self._bus.consume(PROPOSALS, Decision, self._on_proposal)
        q = self._queries
        queries: tuple[tuple[str, type[Message], RequestHandler[Any]], ...] = (
            (subjects.LEDGER_QUERY_PORTFOLIO, PortfolioQuery, q.portfolio),
            (subjects.LEDGER_QUERY_ACCOUNTS, AccountsQuery, q.accounts),
            (subjects.LEDGER_QUERY_LEADERBOARD, LeaderboardQuery, q.leaderboard),
            (subjects.LEDGER_QUERY_POSITIONS, PositionsQuery, q.positions),
            (subjects.LEDGER_QUERY_TRADES, TradesQuery, q.trades),
            (subjects.LEDGER_QUERY_DECISIONS, DecisionsQuery, q.decisions),
            (subjects.LEDGER_QUERY_EQUITY, EquityQuery, q.equity),
            (subjects.LEDGER_QUERY_STATS, StatsQuery, q.stats),
            (subjects.LEDGER_QUERY_VERIFY, VerifyQuery, q.verify),
        )
        for subject, request_type, handler in queries:
            await self._bus.serve(subject, request_type, _unavailable_is_transient(handler))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
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

    async def _once(
        self,
        consumer: str,
        delivery: Delivery,
        effect: Callable[[asyncpg.Connection], Awaitable[T]],
    ) -> T | None:
        """Run ``effect`` and record ``delivery.msg_id`` in one transaction; None if seen."""
        try:
            async with acquire(self._pool) as conn, conn.transaction():
                if not await store.claim_message(conn, delivery.msg_id, consumer):
                    duplicate = True
                    result = None
                else:
                    duplicate = False
                    result = await effect(conn)
        except asyncpg.ForeignKeyViolationError as exc:
            # An agent the ledger has no account for: retrying cannot help.
            raise PermanentError(str(exc)) from exc
        except (TransientError, PermanentError):
            raise
        except Exception as exc:
            if is_unavailable(exc):
                raise TransientError(f"Postgres unavailable: {exc!r}") from exc
            raise
        if duplicate:
            self._metrics.duplicates.labels(consumer).inc()
        return result

    @staticmethod
    def _same_agent(delivery: Delivery, agent_id: str, what: str) -> None:
        """A per-agent subject and the agent its message names must agree."""
        speaker = delivery.last_token
        if agent_id != speaker:
            raise PermanentError(
                f"{what} names agent {agent_id!r} but came on the subject of {speaker!r}"
            )

    # ------------------------------------------------------------ consumers

    async def _on_cycle_started(self, message: CycleStarted, delivery: Delivery) -> None:
        expected = message.agents or tuple(a.id for a in self._lineup.active)

        async def effect(conn: asyncpg.Connection) -> None:
            await store.insert_cycle(conn, message, expected)

        await self._once(CYCLES.durable, delivery, effect)
        await self._announce_arrival()

    async def _on_snapshot(self, message: MarketSnapshot, delivery: Delivery) -> None:
        copy = False

        async def effect(conn: asyncpg.Connection) -> MarkOutcome | None:
            nonlocal copy
            # A cycle has one snapshot: another copy must not re-mark the books.
            if await store.snapshot_stored(conn, message.cycle_id):
                copy = True
                return None
            await store.insert_market_data(conn, message)
            marked = await mark_to_market(
                conn,
                {s.symbol: s.mark_price for s in message.symbols},
                self._clock.now(),
                at=message.taken_at,
                cycle_id=message.cycle_id,
            )
            await store.snapshot_equity(conn, message.taken_at, f"cycle:{message.cycle_id}")
            return marked

        marked = await self._once(SNAPSHOTS.durable, delivery, effect)
        if copy:
            self._metrics.duplicates.labels(SNAPSHOTS.durable).inc()
        if marked is not None and marked.liquidations:
            self._metrics.snapshot_liquidations.inc(marked.liquidations)
            self._relay.wake()
        await self._announce_arrival()
        await self._refresh_equity()

    async def _on_verdict(self, message: Verdict, delivery: Delivery) -> None:
        self._same_agent(delivery, message.decision.agent_id, f"verdict {message.verdict_id}")
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._input_wait
        settled = False

        async def effect(conn: asyncpg.Connection) -> Applied:
            return await self._applier.apply(
                conn, message, self._clock.now(), inputs_settled=settled
            )

        while True:
            try:
                applied = await self._once(VERDICTS.durable, delivery, effect)
                break
            except NotReady:
                # The cycle or snapshot consumer is behind; waiting here keeps verdict order.
                remaining = give_up - loop.time()
                if remaining > 0:
                    await self._wait_for_arrival(min(remaining, 0.5))
                    continue
                if settled or not await self._inputs_caught_up():
                    raise  # transient: redelivered, and waited for again
                # Everything announced so far is stored and the cycle or snapshot is still
                # missing: it will never come. The verdict is recorded, its trades refused.
                settled = True
        if applied is None:
            return
        if applied.duplicate:
            self._metrics.duplicates.labels(VERDICTS.durable).inc()
            return
        self._metrics.verdicts_applied.inc()
        self._metrics.positions_opened.inc(applied.opened)
        self._metrics.positions_closed.inc(applied.closed)
        for code in applied.rejection_codes:
            self._metrics.rejections.labels(code).inc()
        self._completed(applied.cycle_completed)
        self._relay.wake()
        await self._refresh_equity()

    async def _inputs_caught_up(self) -> bool:
        for spec in INPUTS:
            if not await self._bus.consumer_idle(spec.durable):
                return False
        return True

    async def _on_tick(self, message: MarketTick, delivery: Delivery) -> None:
        async def effect(conn: asyncpg.Connection) -> TickOutcome:
            return await self._ticks.apply(conn, message, self._clock.now())

        outcome = await self._once(TICKS.durable, delivery, effect)
        if outcome is None:
            return
        if outcome.duplicate:
            self._metrics.duplicates.labels(TICKS.durable).inc()
            return
        if outcome.stale_symbols:
            self._metrics.stale_marks.inc(len(outcome.stale_symbols))
        for reason, count in outcome.exits.items():
            self._metrics.tick_exits.labels(reason).inc(count)
        self._metrics.funding_payments.inc(outcome.funding_payments)
        if outcome.exits or outcome.funding_payments:
            self._relay.wake()
        if outcome.agents:
            await self._refresh_equity()

    async def _on_llm_call(self, message: LlmCall, delivery: Delivery) -> None:
        self._same_agent(delivery, message.agent_id, f"LLM call {message.call_id}")

        async def effect(conn: asyncpg.Connection) -> None:
            await store.insert_llm_call(conn, message)

        await self._once(LLM_CALLS.durable, delivery, effect)

    async def _on_proposal(self, message: Decision, delivery: Delivery) -> None:
        self._same_agent(delivery, message.agent_id, f"decision {message.decision_id}")

        async def effect(conn: asyncpg.Connection) -> None:
            await store.insert_proposal(conn, message)

        await self._once(PROPOSALS.durable, delivery, effect)

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
            overdue = await store.overdue_cycles(conn, now - self._settle_grace)
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
        self._metrics.cycles_completed.labels(str(event.timed_out).lower()).inc()
        log.info(
            "cycle %s completed%s",
            event.cycle_id,
            " (timed out)" if event.timed_out else "",
            extra={"cycle_id": event.cycle_id, "duration_seconds": event.duration_seconds},
        )

    # ------------------------------------------------------------ helpers

    async def _announce_arrival(self) -> None:
        async with self._arrival:
            self._arrival.notify_all()

    async def _wait_for_arrival(self, timeout: float) -> None:
        async with self._arrival:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrival.wait(), timeout)

    async def _refresh_equity(self) -> None:
        try:
            async with acquire(self._pool) as conn:
                rows = await store.accounts(conn)
        except Exception as exc:
            log.warning("cannot refresh the equity gauge: %r", exc)
            return
        for row in rows:
            self._metrics.equity.labels(row.llm_id).set(float(row.book.equity))


def _unavailable_is_transient(handler: RequestHandler[M]) -> RequestHandler[M]:
    """A query that fails because Postgres is down answers "unavailable", not "internal"."""

    async def guarded(request: M) -> Message:
        try:
            return await handler(request)
        except Exception as exc:
            if is_unavailable(exc):
                raise TransientError(f"Postgres unavailable: {exc!r}") from exc
            raise

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
                await store.upsert_accounts(conn, lineup, settings.initial_balance, ctx.clock.now())
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
    )
