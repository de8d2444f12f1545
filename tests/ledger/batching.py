"""Applying the same inputs as one batch and one by one, to compare what the books hold."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import asyncpg

T = TypeVar("T")
R = TypeVar("R")

Books = dict[str, list[dict[str, Any]]]

# What every batch of the books' inputs may write, each in an order of its own.
BOOKS = {
    "accounts": "SELECT * FROM llm_accounts ORDER BY llm_id",
    "positions": "SELECT * FROM positions ORDER BY id",
    "trades": "SELECT llm_id, position_id, symbol, action, side, entry_price, exit_price, "
    "quantity, realized_pnl, pnl_percentage, fees, exit_reason, executed_at, closed_at "
    "FROM trades ORDER BY position_id, executed_at",
    "equity": "SELECT llm_id, at, source, equity, balance, margin_used, unrealized_pnl, "
    "total_fees, total_funding FROM equity_snapshots ORDER BY source, llm_id",
    # In the order they are published.
    "events": "SELECT event_id, subject, message_type, payload FROM outbox "
    "WHERE published_at IS NULL ORDER BY id",
}
# What a run of marks (ticks, snapshots) writes besides the books.
MARKS = {
    "funding": "SELECT llm_id, position_id, symbol, funding_time, mark_price, quantity, "
    "funding_rate, amount, paid_at FROM funding_payments ORDER BY position_id, funding_time",
    "marks": "SELECT * FROM symbol_marks ORDER BY symbol",
    "ticks": "SELECT * FROM applied_ticks ORDER BY tick_id",
}
Apply = Callable[[asyncpg.Connection, list[T]], Awaitable[list[R]]]


async def books(conn: asyncpg.Connection, queries: Mapping[str, str]) -> Books:
    """Each query's rows, by name."""
    return {name: [dict(r) for r in await conn.fetch(query)] for name, query in queries.items()}


async def together_and_one_by_one(
    database_url: str, items: Sequence[T], apply: Apply[T, R], queries: Mapping[str, str]
) -> tuple[tuple[list[R], Books], tuple[list[R], Books]]:
    """``items`` applied as one batch, then one by one, each time in a transaction rolled
    back afterwards: the outcomes and the books, both ways."""
    conn = await asyncpg.connect(database_url)
    try:
        return (
            await _applied(conn, [list(items)], apply, queries),
            await _applied(conn, [[item] for item in items], apply, queries),
        )
    finally:
        await conn.close()


async def _applied(
    conn: asyncpg.Connection, batches: list[list[T]], apply: Apply[T, R], queries: Mapping[str, str]
) -> tuple[list[R], Books]:
    transaction = conn.transaction()
    await transaction.start()
    try:
        outcomes = [o for batch in batches for o in await apply(conn, batch)]
        return outcomes, await books(conn, queries)
    finally:
        await transaction.rollback()
