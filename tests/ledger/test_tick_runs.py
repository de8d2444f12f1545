"""A run of ticks applied together books exactly what the same ticks applied one by one do.

A replay publishes a cycle period's bars together and the ledger prices such a run in
memory, writing each kind of effect once; the books, events and snapshots must not depend
on how the ticks were batched.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import asyncpg

from services.common.contracts import (
    FundingSettlement,
    MarketTick,
    TickPrice,
)
from services.ledger.marks import TickOutcome, TickProcessor
from tests.builders import bar, sell
from tests.ledger.batching import BOOKS, MARKS, together_and_one_by_one
from tests.ledger.harness import LONG_BTC, Ledger, open_positions

BTC, ETH = "BTCUSDT", "ETHUSDT"
FEE = Decimal("0.0004")

_STATE = {**BOOKS, **MARKS}


async def test_a_run_of_ticks_books_what_the_ticks_one_by_one_do(
    lg: Ledger, database_url: str
) -> None:
    now = await open_positions(lg, momentum=[LONG_BTC], random=[sell(ETH, 20, 10)])

    def tick(n: int, after_s: int, *prices: TickPrice) -> MarketTick:
        at = now + timedelta(seconds=after_s)
        return MarketTick(tick_id=f"run-{n}", at=at, prices=prices, data_time=True)

    settlement = FundingSettlement(funding_time=now + timedelta(seconds=90), rate=Decimal("1e-4"))
    ticks = [
        tick(1, 60, bar(BTC, 100500, high=100600, low=100400), bar(ETH, 3010, high=3020, low=3000)),
        # ETH settles its funding within this bar: the short is paid.
        tick(
            2,
            120,
            bar(BTC, 100700, high=100800, low=100600),
            bar(ETH, 3020, high=3025, low=3015, settlement=settlement),
        ),
        # BTC's bar reaches the long's stop.
        tick(3, 180, bar(BTC, 99500, high=100800, low=98900), bar(ETH, 3030, high=3040, low=3020)),
        tick(4, 240, bar(ETH, 3050, high=3060, low=3040)),
        # Older than the tick before it: ETH stays marked at 3,050, but the bar happened and
        # goes through the short's liquidation price.
        tick(5, 200, bar(ETH, 3000, high=3300, low=2990)),
        # A copy of an applied tick changes nothing.
        tick(2, 120, bar(BTC, 1, high=1, low=1), bar(ETH, 1, high=1, low=1)),
    ]
    processor = TickProcessor(FEE)

    async def apply(conn: asyncpg.Connection, run: list[MarketTick]) -> list[TickOutcome]:
        return await processor.apply(conn, run, lg.clock.now())

    (together, books_together), (one_by_one, books_one_by_one) = await together_and_one_by_one(
        database_url, ticks, apply, _STATE
    )
    assert together == one_by_one
    assert books_together == books_one_by_one
    # And the run did what its bars say.
    assert [o.duplicate for o in together] == [False] * 5 + [True]
    assert together[2].exits == {"stop_loss": 1}
    assert together[4].exits == {"liquidation": 1} and together[4].stale_symbols == [ETH]
    assert together[1].funding_payments == 1
    funding = books_together["funding"]
    assert [(f["llm_id"], f["funding_time"]) for f in funding] == [
        ("random", settlement.funding_time)
    ]
    accounts = len(books_together["accounts"])
    ticked = [e for e in books_together["equity"] if e["source"].startswith("tick:run-")]
    assert len(ticked) == 5 * accounts  # every account after every tick
    marks = {m["symbol"]: m["mark_price"] for m in books_together["marks"]}
    assert marks == {BTC: Decimal(99500), ETH: Decimal(3050)}
    assert {p["status"] for p in books_together["positions"]} == {"CLOSED", "LIQUIDATED"}
    events = [e["event_id"] for e in books_together["events"]]
    assert "account:tick:run-2:random" in events and "account:tick:run-3:momentum" in events
