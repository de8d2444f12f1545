"""``trades`` (an opening or a closing of a position) and ``funding_payments``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from uuid import UUID

import asyncpg
from asyncpg import Connection

from services.ledger.sql.paging import agent_page
from services.ledger.sql.positions import PositionRow

# ---------------------------------------------------------------- trades


_NEWEST_FIRST = "executed_at DESC, (exit_price IS NULL), id"


async def trades_page(
    conn: Connection, agent_id: str | None, *, limit: int, offset: int
) -> list[asyncpg.Record]:
    """One page of trades (all agents, or one), newest first."""
    return await agent_page(conn, "trades", _NEWEST_FIRST, agent_id, limit=limit, offset=offset)


# Closed trades per agent: wins (PnL > 0) and losses (the rest), summed exactly.
_CLOSES = """
SELECT llm_id,
       count(*) FILTER (WHERE realized_pnl > 0)::int AS wins,
       coalesce(sum(realized_pnl) FILTER (WHERE realized_pnl > 0), 0) AS won,
       count(*) FILTER (WHERE realized_pnl <= 0)::int AS losses,
       coalesce(sum(realized_pnl) FILTER (WHERE realized_pnl <= 0), 0) AS lost
FROM trades WHERE exit_price IS NOT NULL GROUP BY llm_id
"""


async def closes(conn: Connection) -> dict[str, asyncpg.Record]:
    """Per agent, its closed trades' wins and losses: counts and sums."""
    return {r["llm_id"]: r for r in await conn.fetch(_CLOSES)}


_OVERDRAWN = """
SELECT t.llm_id, t.position_id, t.realized_pnl, p.margin
FROM trades t JOIN positions p ON p.id = t.position_id
WHERE t.exit_price IS NOT NULL AND t.realized_pnl < -p.margin
"""


async def overdrawn(conn: Connection) -> list[asyncpg.Record]:
    """Closing trades that lost more than their position's margin (none should)."""
    return list(await conn.fetch(_OVERDRAWN))


# ---------------------------------------------------------------- funding


async def last_funding_times(
    conn: Connection, position_ids: Sequence[UUID]
) -> dict[UUID, datetime]:
    """The latest funding time each of these positions has paid, if any."""
    records = await conn.fetch(
        "SELECT position_id, max(funding_time) AS last FROM funding_payments "
        "WHERE position_id = ANY($1::uuid[]) GROUP BY position_id",
        list(position_ids),
    )
    return {r["position_id"]: r["last"] for r in records}


@dataclass(frozen=True)
class FundingPayment:
    """One position's payment at one funding time."""

    position: PositionRow
    funding_time: datetime
    mark_price: Decimal
    funding_rate: Decimal
    amount: Decimal
    paid_at: datetime
