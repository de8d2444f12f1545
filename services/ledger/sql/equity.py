"""``equity_snapshots`` (each agent's equity after every tick) and ``equity_thinning``
(how far retention thinned each agent's).

The series statements draw a chart's points (see :mod:`services.ledger.series`); their
arguments are a plan's: (whole agents, start, thinned agents, span starts, span ends,
limit). The JSON ones have Postgres write the answer, byte for byte what the contracts'
models would write (see migration 0009's ``arena_json_*``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import asyncpg
from asyncpg import Connection


def snapshot_insert(at: str, source: str, accounts: str) -> str:
    """The statement recording the equity of each row of ``accounts`` (a table or a CTE of
    account rows) at ``at`` under ``source`` (SQL expressions, e.g. parameters)."""
    return (
        "INSERT INTO equity_snapshots (llm_id, at, source, equity, balance, margin_used, "
        f"unrealized_pnl, total_fees, total_funding) SELECT llm_id, {at}, {source}, "
        "balance + margin_used + unrealized_pnl, balance, margin_used, unrealized_pnl, "
        f"total_fees, total_funding FROM {accounts}"
    )


# ---------------------------------------------------------------- cycles

# Each agent's equity at every completed cycle, with the benchmark's mark price (else its
# last price) in that cycle's market_data row, in cycle order. Reads the partial index of
# cycle snapshots (migration 0013), not the tick snapshots around them.
_CYCLE_EQUITY = """
SELECT e.llm_id, e.equity, coalesce(m.mark_price, m.price) AS benchmark
FROM cycles c
JOIN market_data m ON m.cycle_id = c.cycle_id AND m.symbol = $1
JOIN equity_snapshots e ON e.source = 'cycle:' || c.cycle_id
WHERE c.status = 'completed' AND e.source LIKE 'cycle:%'
ORDER BY c.sequence, c.started_at, c.cycle_id
"""


async def cycle_equity(conn: Connection, benchmark: str) -> list[asyncpg.Record]:
    """(llm_id, equity, benchmark) of every agent at every completed cycle whose snapshot
    holds ``benchmark``, oldest cycle first."""
    return list(await conn.fetch(_CYCLE_EQUITY, benchmark))


# ---------------------------------------------------------------- series

COLUMNS = "llm_id, at, id, equity, balance, margin_used, unrealized_pnl, total_fees, total_funding"

_SIZES = """
SELECT a.llm_id,
       (SELECT count(*) FROM (SELECT 1 FROM equity_snapshots e
                              WHERE e.llm_id = a.llm_id AND e.at >= $2 LIMIT $3 + 1) s) AS n,
       (SELECT min(e.at) FROM equity_snapshots e WHERE e.llm_id = a.llm_id AND e.at >= $2) AS lo,
       (SELECT max(e.at) FROM equity_snapshots e WHERE e.llm_id = a.llm_id AND e.at >= $2) AS hi
FROM unnest($1::text[]) AS a (llm_id)
"""

_SERIES = f"""
SELECT {COLUMNS} FROM equity_snapshots
WHERE llm_id = ANY($1::text[]) AND at >= $2
UNION ALL
SELECT p.* FROM unnest($3::text[]) AS a (llm_id)
CROSS JOIN unnest($4::timestamptz[], $5::timestamptz[]) AS b (lo, hi)
CROSS JOIN LATERAL (
    SELECT {COLUMNS} FROM equity_snapshots e
    WHERE e.llm_id = a.llm_id AND e.at > b.lo AND e.at <= b.hi AND e.at >= $2
    ORDER BY e.at DESC, e.id DESC LIMIT 1
) p
ORDER BY at DESC, id DESC
LIMIT $6
"""


_POINT = """'{"schema_version":1,"agent_id":"' || llm_id
    || '","at":"' || arena_json_time(at)
    || '","equity":"' || arena_json_decimal(equity)
    || '","balance":"' || arena_json_decimal(balance)
    || '","margin_used":"' || arena_json_decimal(margin_used)
    || '","unrealized_pnl":"' || arena_json_decimal(unrealized_pnl)
    || '","total_fees":"' || arena_json_decimal(total_fees)
    || '","total_funding":"' || arena_json_decimal(total_funding) || '"}'"""

_AS_POINTS = f"""
WITH picked AS ({_SERIES})
SELECT '{{"schema_version":1,"points":['
    || coalesce(string_agg({_POINT}, ',' ORDER BY at, id), '') || ']}}'
FROM picked
"""

# Each agent's entry of an EquityColumns, by agent id, comma-separated (no envelope).
_COLUMN_ENTRIES = f"""
WITH picked AS ({_SERIES}),
per_agent AS (
    SELECT llm_id,
           string_agg('"' || arena_json_time(at) || '"', ',' ORDER BY at, id) AS ats,
           string_agg('"' || arena_json_decimal(equity) || '"', ',' ORDER BY at, id) AS values
    FROM picked GROUP BY llm_id
)
SELECT coalesce(string_agg('{{"schema_version":1,"agent_id":"' || llm_id || '","at":['
    || ats || '],"equity":[' || values || ']}}', ',' ORDER BY llm_id COLLATE "C"), '')
FROM per_agent
"""


async def sizes(
    conn: Connection, agent_ids: Sequence[str], start: datetime, points: int
) -> list[asyncpg.Record]:
    """Per agent: its snapshots from ``start`` (counted up to ``points`` + 1), the first
    and the last one's times."""
    return list(await conn.fetch(_SIZES, list(agent_ids), start, points))


async def series(conn: Connection, arguments: Sequence[object]) -> list[asyncpg.Record]:
    return list(await conn.fetch(_SERIES, *arguments))


async def points_json(conn: Connection, arguments: Sequence[object]) -> str:
    text: str = await conn.fetchval(_AS_POINTS, *arguments)
    return text


async def column_entries_json(conn: Connection, arguments: Sequence[object]) -> str:
    text: str = await conn.fetchval(_COLUMN_ENTRIES, *arguments)
    return text


# ---------------------------------------------------------------- for the curves


async def new_snapshots(conn: Connection, after_id: int, limit: int) -> list[asyncpg.Record]:
    """(id, llm_id, at) of the snapshots after ``after_id``, in id order, at most ``limit``."""
    return list(
        await conn.fetch(
            "SELECT id, llm_id, at FROM equity_snapshots WHERE id > $1 ORDER BY id LIMIT $2",
            after_id,
            limit,
        )
    )


# Each bucket's snapshots read through the index on (llm_id, at), one range a bucket.
# OFFSET 0 keeps the planner from flattening the lateral read into a join: before
# autovacuum had analyzed the table (a replay writes faster than it analyzes), the generic
# plan read all of the agent's snapshots once and filtered them for every bucket, a read
# that grew with the history (45 ms a call after 12 days of replay, for seven agents
# every few seconds).
BUCKET_ROWS = """
SELECT b.start, e.equity
FROM unnest($2::timestamptz[]) AS b (start)
CROSS JOIN LATERAL (
    SELECT at, id, equity FROM equity_snapshots
    WHERE llm_id = $1 AND at >= b.start AND at < b.start + $3::interval
    OFFSET 0
) e
ORDER BY b.start, e.at, e.id
"""


async def bucket_equities(
    conn: Connection, agent_id: str, starts: Sequence[datetime], width: timedelta
) -> list[asyncpg.Record]:
    """(start, equity) of ``agent_id``'s snapshots in the buckets at ``starts``, in time order."""
    return list(await conn.fetch(BUCKET_ROWS, agent_id, list(starts), width))


# ---------------------------------------------------------------- thinning


async def thinned_from(conn: Connection, agent_id: str) -> datetime | None:
    """Where thinning ``llm_id`` goes on: where it last stopped, else its oldest snapshot."""
    start: datetime | None = await conn.fetchval(
        "SELECT coalesce((SELECT thinned_until FROM equity_thinning WHERE llm_id = $1), "
        "(SELECT min(at) FROM equity_snapshots WHERE llm_id = $1))",
        agent_id,
    )
    return start


async def snapshots_between(
    conn: Connection, agent_id: str, start: datetime, end: datetime, limit: int | None
) -> list[asyncpg.Record]:
    """(id, at, source, equity) of ``agent_id``'s snapshots in [start, end), in time order."""
    return list(
        await conn.fetch(
            "SELECT id, at, source, equity FROM equity_snapshots "
            "WHERE llm_id = $1 AND at >= $2 AND at < $3 ORDER BY at, id LIMIT $4",
            agent_id,
            start,
            end,
            limit,
        )
    )


async def delete_snapshots(conn: Connection, ids: Sequence[int]) -> None:
    await conn.execute("DELETE FROM equity_snapshots WHERE id = ANY($1::bigint[])", list(ids))


async def save_thinned_until(conn: Connection, agent_id: str, until: datetime) -> None:
    await conn.execute(
        "INSERT INTO equity_thinning (llm_id, thinned_until) VALUES ($1, $2) "
        "ON CONFLICT (llm_id) DO UPDATE SET thinned_until = EXCLUDED.thinned_until",
        agent_id,
        until,
    )
