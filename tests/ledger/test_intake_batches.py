"""One batch of the books' inputs, applied in one transaction without a savepoint per
message: what is refused for good is refused before it writes, and the rest applies.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from services.common import subjects
from services.common.consumers import Delivery, Item
from services.common.contracts import (
    CycleStarted,
    FundingSettlement,
    MarketSnapshot,
    MarketTick,
    Message,
)
from services.common.instruments import InstrumentTable
from services.common.lineup import load_lineup
from services.common.settings import Settings
from services.ledger.intake import BookIntake, Effects
from services.ledger.marks import TickOutcome, TickProcessor
from services.ledger.verdicts import VerdictApplier
from tests.builders import (
    approved,
    bar,
    buy,
    cycle_started,
    sell,
    snapshot,
    validated,
    verdict,
)
from tests.ledger.batching import BOOKS, MARKS, together_and_one_by_one
from tests.ledger.harness import LINEUP, LONG_BTC, Ledger, open_positions

CONSUMER = "intake-test"


def _item(message: Message, subject: str, msg_id: str, sequence: int) -> Item:
    return message, Delivery(subject, msg_id, sequence, 1)


def _intake(pool: asyncpg.Pool, settings: Settings) -> BookIntake:
    return BookIntake(
        pool,
        load_lineup(LINEUP),
        VerdictApplier(
            settings.taker_fee_rate, InstrumentTable(), settings.limits, frozenset(settings.symbols)
        ),
        TickProcessor(settings.taker_fee_rate),
        CONSUMER,
    )


async def test_refused_messages_leave_the_rest_of_their_batch_applied(
    lg: Ledger, database_url: str, make_settings: Callable[..., Settings]
) -> None:
    now = await open_positions(lg, momentum=[LONG_BTC], random=[])
    settings = make_settings(DATABASE_URL=database_url, ARENA_AGENTS_FILE=str(LINEUP))
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    intake = _intake(pool, settings)

    def tick(n: int, mark: int) -> MarketTick:
        at = now + timedelta(minutes=n)
        prices = (bar("BTCUSDT", mark, low=mark - 10, high=mark + 10),)
        return MarketTick(tick_id=f"b{n}", at=at, prices=prices)

    ghost = verdict("c1", "ghost", now, approved(buy("ETHUSDT", 10, 2)))
    stolen = verdict("c1", "mean-reversion", now, approved(buy("ETHUSDT", 10, 2)))
    items = [
        _item(tick(1, 100100), subjects.MARKET_TICK, "t1", 11),
        _item(ghost, subjects.decision_verdict("ghost"), "v-ghost", 12),
        _item(tick(2, 100200), subjects.MARKET_TICK, "t2", 13),
        # mean-reversion's verdict on random's subject.
        _item(stolen, subjects.decision_verdict("random"), "v-stolen", 14),
        _item(tick(1, 100100), subjects.MARKET_TICK, "t1", 15),  # a copy
    ]
    try:
        effects = await intake.apply(items, now)
    finally:
        await pool.close()

    assert sorted(effects.refused) == [1, 3]
    assert "has no account" in effects.refused[1]
    assert "came on the subject of 'random'" in effects.refused[3]
    assert effects.duplicates == 1 and len(effects.ticks) == 2
    # Both ticks are booked: the long marked at the second, an equity row per tick.
    price = await lg.db.fetchval("SELECT current_price FROM positions WHERE llm_id = 'momentum'")
    assert price == Decimal(100200)
    sources = await lg.db.fetch(
        "SELECT DISTINCT source FROM equity_snapshots WHERE source LIKE 'tick:b%' ORDER BY 1"
    )
    assert [r["source"] for r in sources] == ["tick:b1", "tick:b2"]
    # Nothing of the refused verdicts is in the books; every message's id is claimed and
    # the consumer resumes after the batch.
    assert not await lg.db.fetchval(
        "SELECT count(*) FROM decisions WHERE llm_id IN ('ghost', 'mean-reversion')"
    )
    claimed = await lg.db.fetch(
        "SELECT msg_id FROM processed_messages WHERE consumer = $1 ORDER BY 1", CONSUMER
    )
    assert [r["msg_id"] for r in claimed] == ["t1", "t2", "v-ghost", "v-stolen"]
    position = await lg.db.fetchval(
        "SELECT stream_sequence FROM consumer_positions WHERE durable = $1", CONSUMER
    )
    assert position == 15


async def test_bars_cycle_starts_and_snapshots_in_one_batch_book_what_they_do_one_by_one(
    lg: Ledger, database_url: str, make_settings: Callable[..., Settings]
) -> None:
    """A replay publishes a cycle period's bars with the next cycle's start and snapshot:
    the ledger books them as one run of marks, which must not change what they book."""
    now = await open_positions(lg, momentum=[LONG_BTC], random=[sell("ETHUSDT", 20, 10)])
    settings = make_settings(DATABASE_URL=database_url, ARENA_AGENTS_FILE=str(LINEUP))
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    intake = _intake(pool, settings)

    def at(minutes: int) -> datetime:
        return now + timedelta(minutes=minutes)

    def tick(n: int, btc: int, eth: int, **eth_bar: Any) -> MarketTick:
        prices = (
            bar("BTCUSDT", btc, low=btc - 50, high=btc + 50),
            bar("ETHUSDT", eth, low=eth - 5, high=eth + 5, **eth_bar),
        )
        return MarketTick(tick_id=f"b{n}", at=at(n), prices=prices, data_time=True)

    def cycle(cycle_id: str, sequence: int, minutes: int, btc: int, eth: int) -> list[Message]:
        prices = {"BTCUSDT": Decimal(btc), "ETHUSDT": Decimal(eth)}
        return [
            validated(cycle_started(cycle_id, sequence, at(minutes), AGENTS), data_time=True),
            validated(snapshot(cycle_id=cycle_id, at=at(minutes), prices=prices), data_time=True),
        ]

    settled = FundingSettlement(funding_time=at(2), rate=Decimal("1e-4"))
    messages: list[Message] = [
        tick(1, 100500, 3010),
        tick(2, 100600, 3020, settlement=settled),  # the short is paid its funding
        *cycle("c2", 2, 2, 100600, 3020),
        # c2's snapshot again (a copy under another message id), then bars no older
        # cycle saw, and a cycle whose marks go through the short's liquidation price.
        cycle("c2", 2, 2, 1, 1)[1],
        tick(3, 100400, 3100),
        tick(4, 98500, 3200),  # the long's stop
        *cycle("c3", 3, 4, 98500, 3400),
    ]
    items = [_item(m, _SUBJECTS[type(m)], f"m{n}", 20 + n) for n, m in enumerate(messages, start=1)]

    async def apply(conn: asyncpg.Connection, batch: list[Item]) -> list[Effects]:
        return [await intake.apply_in(conn, batch, now)]

    try:
        (together, books_together), (one_by_one, books_one_by_one) = await together_and_one_by_one(
            database_url, items, apply, _MARKED
        )
    finally:
        await pool.close()
    assert books_together == books_one_by_one
    for figure in (_sum("duplicates"), _sum("snapshot_liquidations"), _ticks, _snapshots):
        assert figure(together) == figure(one_by_one)
    # And the run did what its inputs say.
    assert _sum("duplicates")(together) == 1 and _sum("snapshot_liquidations")(together) == 1
    assert [t.exits for t in _ticks(together)] == [{}, {}, {}, {"stop_loss": 1}]
    assert _snapshots(together) == ["c2", "c2", "c3"]
    status = {p["llm_id"]: p["status"] for p in books_together["positions"]}
    assert status == {"momentum": "CLOSED", "random": "LIQUIDATED"}
    assert [f["llm_id"] for f in books_together["funding"]] == ["random"]
    sources = {e["source"] for e in books_together["equity"]}
    assert {"cycle:c2", "cycle:c3", "tick:b1", "tick:b4"} <= sources
    assert [c["cycle_id"] for c in books_together["cycles"]] == ["c1", "c2", "c3"]


AGENTS = ("momentum", "random")
_SUBJECTS: dict[type[Message], str] = {
    MarketTick: subjects.MARKET_TICK,
    CycleStarted: subjects.CYCLE_STARTED,
    MarketSnapshot: subjects.MARKET_SNAPSHOT,
}
_MARKED = {
    **BOOKS,
    **MARKS,
    "cycles": "SELECT * FROM cycles ORDER BY cycle_id",
    "prices": "SELECT cycle_id, symbol, price, mark_price, data_timestamp FROM market_data "
    "ORDER BY cycle_id, symbol",
    "claimed": "SELECT consumer, msg_id FROM processed_messages ORDER BY msg_id",
    "position": "SELECT durable, stream_sequence FROM consumer_positions ORDER BY durable",
}


def _sum(name: str) -> Callable[[list[Effects]], int]:
    return lambda effects: sum(getattr(e, name) for e in effects)


def _ticks(effects: list[Effects]) -> list[TickOutcome]:
    return [t for e in effects for t in e.ticks]


def _snapshots(effects: list[Effects]) -> list[str]:
    return [c for e in effects for c in e.snapshots]
