"""Marking open positions to market (ticks and snapshots).

Issue 6 adds, on each tick, liquidation, stop loss and take profit from the bar's high
and low; this is where they go, after the mark.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

import asyncpg

from services.ledger import accounting, store


async def mark_to_market(
    conn: asyncpg.Connection, mark_prices: Mapping[str, Decimal], now: datetime
) -> list[str]:
    """Reprice every open position on these symbols; return the agents whose PnL moved."""
    if not mark_prices:
        return []
    symbols = sorted(mark_prices)
    holders = await conn.fetch(
        "SELECT DISTINCT llm_id FROM positions WHERE status = 'OPEN' AND symbol = ANY($1::text[])",
        symbols,
    )
    agents = sorted(r["llm_id"] for r in holders)
    if not agents:
        return []
    # Accounts before positions, the order a verdict takes them in: no deadlock.
    await store.lock_accounts(conn, agents)
    positions = await store.open_positions_on(conn, symbols)
    await store.mark_positions(
        conn,
        [
            (
                p.id,
                mark_prices[p.symbol],
                accounting.unrealized_pnl(p.side, p.entry_price, mark_prices[p.symbol], p.quantity),
            )
            for p in positions
        ],
    )
    totals = await conn.fetch(
        "SELECT llm_id, sum(unrealized_pnl) AS unrealized FROM positions "
        "WHERE status = 'OPEN' AND llm_id = ANY($1::text[]) GROUP BY llm_id",
        agents,
    )
    for row in totals:
        account = await store.account(conn, row["llm_id"])
        if account is not None:
            await store.save_book(conn, account.llm_id, account.book.marked(row["unrealized"]), now)
    return agents
