"""Live ticks priced as one run book what the ledger booked when it applied each tick in
a transaction of its own (before runs existed): the stored books of that code, for the
same ticks, are the expected result.

The ticks cross two funding times (funding charged, once at the rates read for the run),
fire a stop that leaves its holder with a position on another symbol, liquidate a long,
tick a symbol no one holds any more, and bring a stale bar.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg

from services.common.contracts import MarketTick, TickPrice
from services.ledger.marks import TickProcessor
from tests.builders import bar, buy, sell
from tests.ledger.harness import LONG_BTC, Ledger, open_positions

BTC, ETH = "BTCUSDT", "ETHUSDT"
FEE = Decimal("0.0004")
EXPECTED = Path(__file__).parent / "fixtures" / "ticks_applied_one_at_a_time.json"
_BOOKS = {
    "accounts": "SELECT llm_id, balance, margin_used, total_pnl, realized_pnl, unrealized_pnl, "
    "total_fees, total_trades, winning_trades, losing_trades, open_positions, total_funding, "
    "updated_at FROM llm_accounts ORDER BY llm_id",
    "positions": "SELECT llm_id, symbol, side, status, current_price, unrealized_pnl, closed_at "
    "FROM positions ORDER BY llm_id, symbol",
    "trades": "SELECT llm_id, symbol, exit_price, realized_pnl, fees, exit_reason, executed_at "
    "FROM trades ORDER BY llm_id, symbol, executed_at",
    "funding": "SELECT llm_id, symbol, funding_time, mark_price, amount, paid_at "
    "FROM funding_payments ORDER BY llm_id, symbol, funding_time",
    "equity": "SELECT llm_id, at, source, equity, balance, margin_used, unrealized_pnl, "
    "total_fees, total_funding FROM equity_snapshots WHERE source LIKE 'tick:%' "
    "ORDER BY source, llm_id",
    "marks": "SELECT * FROM symbol_marks ORDER BY symbol",
    "events": "SELECT event_id, payload FROM outbox WHERE event_id LIKE 'account:tick%' "
    "OR event_id LIKE 'position:%:closed' ORDER BY event_id",
}
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


async def test_a_run_of_live_ticks_books_what_one_tick_per_transaction_booked(
    lg: Ledger, database_url: str
) -> None:
    now = await open_positions(
        lg, momentum=[LONG_BTC, sell(ETH, 20, 10)], random=[buy(ETH, 20, 10)]
    )
    hour, minute = timedelta(hours=1), timedelta(minutes=1)

    def tick(n: int, after: timedelta, *prices: TickPrice) -> MarketTick:
        return MarketTick(tick_id=f"L{n}", at=now + after, prices=prices)

    ticks = [
        # 11:00: past the 08:00 funding time, every position pays or earns it.
        tick(
            1,
            10 * hour,
            bar(BTC, 100500, high=100600, low=100400),
            bar(ETH, 3010, high=3020, low=3000),
        ),
        # The BTC stop fires: momentum keeps its ETH short.
        tick(2, 10 * hour + minute, bar(BTC, 99500, high=100000, low=98900)),
        # 19:00: past 16:00, funding again on ETH.
        tick(3, 18 * hour, bar(ETH, 3100, high=3120, low=3090)),
        # Through random's long's liquidation price.
        tick(4, 18 * hour + minute, bar(ETH, 2500, high=3100, low=2400)),
        # BTC: nobody holds it any more.
        tick(5, 18 * hour + 2 * minute, bar(BTC, 101000, high=101100, low=100900)),
        # Older than the ETH mark: stale.
        tick(6, 17 * hour, bar(ETH, 3000, high=3010, low=2990)),
    ]
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            outcomes = await TickProcessor(FEE).apply(conn, ticks, lg.clock.now())
            books = {name: [dict(r) for r in await conn.fetch(q)] for name, q in _BOOKS.items()}
    finally:
        await conn.close()
    found = {**books, "outcomes": [o.__dict__ for o in outcomes]}
    dumped = _UUID.sub("<id>", json.dumps(found, default=str, indent=1, sort_keys=True))
    assert json.loads(dumped) == json.loads(EXPECTED.read_text())
    # The scenario did what its comments say.
    assert [o.exits for o in outcomes][1] == {"stop_loss": 1}
    assert [o.exits for o in outcomes][3] == {"liquidation": 1}
    assert outcomes[5].stale_symbols == [ETH]
    assert sum(o.funding_payments for o in outcomes) == 5
