"""One page of a table, for all agents or one: the statement every list answer shares."""

from __future__ import annotations

from typing import Literal

import asyncpg


async def agent_page(
    conn: asyncpg.Connection,
    table: Literal["trades", "decisions"],
    order_by: str,
    agent_id: str | None,
    *,
    limit: int,
    offset: int,
) -> list[asyncpg.Record]:
    """One page of ``table`` (all agents, or one); an index serves each order.

    ``table`` and ``order_by`` are the callers' constants, never request input.
    """
    if agent_id is None:
        sql = f"SELECT * FROM {table} ORDER BY {order_by} LIMIT $1 OFFSET $2"
        return list(await conn.fetch(sql, limit, offset))
    sql = f"SELECT * FROM {table} WHERE llm_id = $1 ORDER BY {order_by} LIMIT $2 OFFSET $3"
    return list(await conn.fetch(sql, agent_id, limit, offset))
