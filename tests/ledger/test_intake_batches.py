"""One batch of the books' inputs, applied in one transaction without a savepoint per
message: what is refused for good is refused before it writes, and the rest applies.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import asyncpg

from services.common import subjects
from services.common.consumers import Delivery, Item
from services.common.contracts import MarketTick, Message
from services.common.instruments import InstrumentTable
from services.common.lineup import load_lineup
from services.common.settings import Settings
from services.ledger.intake import BookIntake
from services.ledger.marks import TickProcessor
from services.ledger.verdicts import VerdictApplier
from tests.builders import approved, bar, buy, verdict
from tests.ledger.harness import LINEUP, LONG_BTC, Ledger, open_positions

CONSUMER = "intake-test"


def _item(message: Message, subject: str, msg_id: str, sequence: int) -> Item:
    return message, Delivery(subject, msg_id, sequence, 1)


async def test_refused_messages_leave_the_rest_of_their_batch_applied(
    lg: Ledger, database_url: str, make_settings: Callable[..., Settings]
) -> None:
    now = await open_positions(lg, momentum=[LONG_BTC], random=[])
    settings = make_settings(DATABASE_URL=database_url, ARENA_AGENTS_FILE=str(LINEUP))
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    intake = BookIntake(
        pool,
        load_lineup(LINEUP),
        VerdictApplier(
            settings.taker_fee_rate, InstrumentTable(), settings.limits, frozenset(settings.symbols)
        ),
        TickProcessor(settings.taker_fee_rate),
        CONSUMER,
    )

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
