"""Property tests of the ledger on real Postgres: random cycles of opens and closes, ticks
whose bars fire stops, targets and liquidations and cross funding times, and duplicated
messages, over three agents, keep the books' invariants and ``verify`` passes.

Messages go through the ledger service's own consumer handlers (the same code a NATS
delivery reaches, exactly-once claim included); only the transport is left out, so a
hundred messages cost milliseconds. One database serves every example, its schema
recreated each time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any, Literal

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from services.common import subjects
from services.common.bus import Bus, BusMetrics, Delivery
from services.common.clock import ManualClock
from services.common.contracts import (
    Action,
    MarketSnapshot,
    MarketTick,
    Message,
    Reason,
    TickPrice,
    TradeAction,
)
from services.common.instruments import load_instruments
from services.common.lineup import load_lineup
from services.common.settings import Settings
from services.ledger import sql
from services.ledger.database import create_pool
from services.ledger.metrics import LedgerMetrics
from services.ledger.migrate import apply_migrations
from services.ledger.service import LedgerService
from services.ledger.verify import examine
from tests.builders import cycle_started, symbol_snapshot, verdict
from tests.ledger.harness import LINEUP

AGENTS = ("momentum", "mean-reversion", "random")
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
START_PRICES = (Decimal(100000), Decimal(3000), Decimal(150))
CENT = Decimal("0.01")
BP = Decimal("0.0001")

Dup = Literal["once", "redelivered", "republished"]


@dataclass(frozen=True)
class Order:
    kind: TradeAction
    symbol: int
    margin: int
    leverage: int
    stop_bp: int | None  # distance of the stop loss from the entry, in basis points
    target_bp: int | None
    approved: bool


@dataclass(frozen=True)
class Cycle:
    minutes: int
    moves_bp: tuple[int, ...]
    funding_bp: int
    # Per agent: its orders, or None when it sends no verdict before the deadline.
    decisions: tuple[tuple[Order, ...] | None, ...]
    # The absent agents answer after the cycle timed out (their trades are refused).
    late: bool
    dup: Dup


@dataclass(frozen=True)
class Tick:
    minutes: int
    # Per symbol: (mark move, high above the mark, low below the mark), in basis points.
    bars: tuple[tuple[int, int, int], ...]
    dup: Dup


dups = st.sampled_from(["once", "once", "redelivered", "republished"])
orders = st.builds(
    Order,
    # Opens and closes weigh more than holds: more positions to mark, close and fund.
    kind=st.sampled_from(
        [
            *([TradeAction.BUY, TradeAction.SELL] * 2),
            TradeAction.CLOSE,
            TradeAction.CLOSE,
            TradeAction.HOLD,
        ]
    ),
    symbol=st.integers(0, len(SYMBOLS) - 1),
    margin=st.integers(10, 30),
    leverage=st.integers(1, 10),
    stop_bp=st.none() | st.integers(50, 1200),
    target_bp=st.none() | st.integers(50, 2000),
    approved=st.sampled_from([True, True, True, True, False]),
)
cycles = st.builds(
    Cycle,
    minutes=st.integers(1, 240),
    moves_bp=st.tuples(*[st.integers(-1500, 1500)] * len(SYMBOLS)),
    funding_bp=st.integers(-100, 100),
    decisions=st.tuples(*[st.none() | st.lists(orders, max_size=4).map(tuple)] * len(AGENTS)),
    late=st.booleans(),
    dup=dups,
)
bars = st.tuples(st.integers(-1500, 1500), st.integers(0, 1500), st.integers(0, 1500))
ticks = st.builds(
    Tick,
    minutes=st.integers(1, 600),  # funding times are 8 h apart: many ticks cross one
    bars=st.tuples(*[bars] * len(SYMBOLS)),
    dup=dups,
)


def _moved(price: Decimal, bp: int) -> Decimal:
    return max((price * (1 + bp * BP)).quantize(CENT, ROUND_DOWN), CENT)


class Driver:
    """Feeds messages to a ledger service's handlers, as its consumers would."""

    def __init__(self, service: LedgerService, clock: ManualClock, db: asyncpg.Connection) -> None:
        self.service = service
        self.clock = clock
        self.db = db
        self.prices = list(START_PRICES)
        self.cycles = 0
        self.ticks = 0
        self.sequence = 0

    async def deliver(self, subject: str, message: Message, natural_id: str, dup: Dup) -> None:
        handler = self._apply
        msg_id = f"{subject}:{natural_id}"
        await handler(message, self._delivery(subject, msg_id))
        if dup == "once":
            return
        # The same message again: redelivered by JetStream (same id) or published twice.
        again = msg_id if dup == "redelivered" else f"{msg_id}:copy"
        before = await self.fingerprint()
        await handler(message, self._delivery(subject, again))
        assert await self.fingerprint() == before, f"a {dup} {subject} changed the books"

    async def _apply(self, message: Message, delivery: Delivery) -> None:
        """What the ledger's books consumer does with one fetched message."""
        refused = await self.service._on_books([(message, delivery)])
        assert not refused, refused

    def _delivery(self, subject: str, msg_id: str) -> Delivery:
        self.sequence += 1
        return Delivery(
            subject=subject, msg_id=msg_id, stream_sequence=self.sequence, num_delivered=1
        )

    async def fingerprint(self) -> list[Any]:
        """Everything a message can change, except the record of having seen it."""
        tables = await self.db.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'processed_messages' ORDER BY tablename"
        )
        counts = [
            (t["tablename"], await self.db.fetchval(f'SELECT count(*) FROM "{t["tablename"]}"'))
            for t in tables
        ]
        accounts = await self.db.fetch("SELECT * FROM llm_accounts ORDER BY llm_id")
        positions = await self.db.fetch("SELECT * FROM positions ORDER BY id")
        return [counts, [tuple(a) for a in accounts], [tuple(p) for p in positions]]

    async def cycle(self, step: Cycle) -> None:
        self.clock.advance(step.minutes * 60)
        self.cycles += 1
        cycle_id = f"c{self.cycles}"
        now = self.clock.now()
        self.prices = [_moved(p, bp) for p, bp in zip(self.prices, step.moves_bp, strict=True)]
        started = cycle_started(cycle_id, self.cycles, now, AGENTS)
        await self.deliver(subjects.CYCLE_STARTED, started, cycle_id, step.dup)
        rate = step.funding_bp * BP
        await self.deliver(
            subjects.MARKET_SNAPSHOT, self._snapshot(cycle_id, rate), cycle_id, step.dup
        )
        late: list[tuple[str, tuple[Order, ...]]] = []
        for agent, orders_ in zip(AGENTS, step.decisions, strict=True):
            if orders_ is None:
                if step.late:
                    late.append((agent, (Order(TradeAction.BUY, 0, 10, 2, None, None, True),)))
                continue
            await self._verdict(cycle_id, agent, orders_, step.dup)
        if any(d is None for d in step.decisions):
            # Past the deadline and its grace: the ledger times the cycle out.
            self.clock.advance(70)
            await self.service.complete_overdue_cycles()
        for agent, orders_ in late:
            await self._verdict(cycle_id, agent, orders_, step.dup)

    async def _verdict(
        self, cycle_id: str, agent: str, orders_: tuple[Order, ...], dup: Dup
    ) -> None:
        results = [self._action(o) for o in orders_]
        v = verdict(cycle_id, agent, self.clock.now(), *results)
        await self.deliver(subjects.decision_verdict(agent), v, v.verdict_id, dup)

    def _action(self, order: Order) -> tuple[Action, tuple[Reason, ...]]:
        reasons = () if order.approved else (Reason(code="risk_test", message="refused"),)
        symbol = SYMBOLS[order.symbol]
        if order.kind in (TradeAction.HOLD, TradeAction.CLOSE):
            held = order.kind is TradeAction.HOLD
            return Action(action=order.kind, symbol=None if held else symbol), reasons
        price = self.prices[order.symbol]
        sign = 1 if order.kind is TradeAction.BUY else -1
        stop = None if order.stop_bp is None else _moved(price, -sign * order.stop_bp)
        target = None if order.target_bp is None else _moved(price, sign * order.target_bp)
        action = Action(
            action=order.kind,
            symbol=symbol,
            margin_usd=Decimal(order.margin),
            leverage=order.leverage,
            stop_loss=stop,
            take_profit=target,
            confidence=0.5,
        )
        return action, reasons

    def _snapshot(self, cycle_id: str, funding_rate: Decimal) -> MarketSnapshot:
        now = self.clock.now()
        return MarketSnapshot(
            cycle_id=cycle_id,
            taken_at=now,
            decision_deadline=now + timedelta(seconds=60),
            source="test",
            symbols=tuple(
                symbol_snapshot(s, p, funding=(funding_rate, now + timedelta(hours=8)))
                for s, p in zip(SYMBOLS, self.prices, strict=True)
            ),
        )

    async def tick(self, step: Tick) -> None:
        self.clock.advance(step.minutes * 60)
        self.ticks += 1
        prices: list[TickPrice] = []
        for i, (move, up, down) in enumerate(step.bars):
            mark = _moved(self.prices[i], move)
            self.prices[i] = mark
            prices.append(
                TickPrice(
                    symbol=SYMBOLS[i],
                    last_price=mark,
                    mark_price=mark,
                    high=_moved(mark, up),
                    low=_moved(mark, -down),
                )
            )
        tick_id = f"t{self.ticks}"
        message = MarketTick(tick_id=tick_id, at=self.clock.now(), prices=tuple(prices))
        await self.deliver(subjects.MARKET_TICK, message, tick_id, step.dup)


async def _reset(database_url: str) -> None:
    """A fresh schema: the previous example's rows (and chain head) gone."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        await apply_migrations(conn)
    finally:
        await conn.close()


async def _check_invariants(db: asyncpg.Connection, initial: Decimal) -> None:
    findings = await examine(db)
    assert findings.problems == []
    assert findings.checked_accounts == len(AGENTS)

    assert await db.fetch("SELECT llm_id, balance FROM llm_accounts WHERE balance < 0") == []

    overdrawn = await db.fetch(
        "SELECT p.id, p.margin, t.realized_pnl FROM positions p "
        "JOIN trades t ON t.position_id = p.id AND t.exit_price IS NOT NULL "
        "WHERE p.status = 'LIQUIDATED' AND t.realized_pnl < -p.margin"
    )
    assert overdrawn == []

    rows = await db.fetch(
        """
        SELECT a.llm_id, a.initial_balance, a.balance, a.margin_used, a.unrealized_pnl,
               a.realized_pnl, a.total_fees, a.total_funding,
               (SELECT coalesce(sum(realized_pnl), 0) FROM trades t
                 WHERE t.llm_id = a.llm_id) AS rows_realized,
               (SELECT coalesce(sum(fees), 0) FROM trades t WHERE t.llm_id = a.llm_id) AS rows_fees,
               (SELECT coalesce(sum(amount), 0) FROM funding_payments f
                 WHERE f.llm_id = a.llm_id) AS rows_funding,
               (SELECT coalesce(sum(unrealized_pnl), 0) FROM positions p
                 WHERE p.llm_id = a.llm_id AND p.status = 'OPEN') AS rows_unrealized,
               (SELECT equity FROM equity_snapshots e WHERE e.llm_id = a.llm_id
                 ORDER BY id DESC LIMIT 1) AS last_snapshot
        FROM llm_accounts a ORDER BY a.llm_id
        """
    )
    for r in rows:
        assert r["initial_balance"] == initial
        equity = r["balance"] + r["margin_used"] + r["unrealized_pnl"]
        from_rows = (
            initial + r["rows_realized"] - r["rows_fees"] - r["rows_funding"] + r["rows_unrealized"]
        )
        from_counters = (
            initial + r["realized_pnl"] - r["total_fees"] - r["total_funding"] + r["unrealized_pnl"]
        )
        assert equity == from_rows == from_counters, dict(r)
        # Every change of an account ends with a snapshot of it (none before any change).
        assert r["last_snapshot"] in (None, equity), dict(r)


async def _run(settings_: Settings, nats_url: str, steps: list[Cycle | Tick]) -> None:
    await _reset(settings_.database_url or "")
    clock = ManualClock()
    bus = await Bus.connect(nats_url, "ledger-properties", BusMetrics(CollectorRegistry()))
    pool = await create_pool(settings_)
    db = await asyncpg.connect(settings_.database_url)
    try:
        async with pool.acquire() as conn, conn.transaction():
            await sql.accounts.upsert_accounts(
                conn, load_lineup(settings_.agents_file), settings_.initial_balance, clock.now()
            )
        service = LedgerService(
            bus=bus,
            clock=clock,
            pool=pool,
            lineup=load_lineup(settings_.agents_file),
            taker_fee_rate=settings_.taker_fee_rate,
            limits=settings_.limits,
            symbols=settings_.symbols,
            metrics=LedgerMetrics(CollectorRegistry()),
            instruments=load_instruments(settings_.instruments_file),
        )
        driver = Driver(service, clock, db)
        for step in steps:
            if isinstance(step, Cycle):
                await driver.cycle(step)
            else:
                await driver.tick(step)
            await _check_invariants(db, settings_.initial_balance)
    finally:
        await db.close()
        await pool.close()
        await bus.close()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(st.one_of(cycles, ticks), min_size=3, max_size=16))
def test_random_cycles_ticks_and_duplicates_keep_the_books(
    make_settings: Callable[..., Settings],
    database_url: str,
    nats_url: str,
    steps: list[Cycle | Tick],
) -> None:
    settings_ = make_settings(DATABASE_URL=database_url, ARENA_AGENTS_FILE=str(LINEUP))
    asyncio.run(_run(settings_, nats_url, steps))
