"""The equity curves' summaries: ``equity_curve_buckets`` (one per agent and hour),
``equity_curve_totals`` (each agent's curve folded through its older buckets) and
``equity_curve_position`` (the last snapshot summed)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncpg
from asyncpg import Connection

# ---------------------------------------------------------------- position


async def folded_id(conn: Connection) -> int:
    """The last snapshot id summed into the buckets, locked until the transaction ends."""
    return int(await conn.fetchval("SELECT folded_id FROM equity_curve_position FOR UPDATE"))


async def save_folded_id(conn: Connection, snapshot_id: int) -> None:
    await conn.execute("UPDATE equity_curve_position SET folded_id = $1", snapshot_id)


# ---------------------------------------------------------------- buckets

_UPSERT = """
INSERT INTO equity_curve_buckets (llm_id, bucket_start, points, first_equity, last_equity,
    highest, lowest, largest_fall, returns, returns_sum, returns_squares, stale)
SELECT * , false FROM unnest($1::text[], $2::timestamptz[], $3::int[], $4::numeric[],
    $5::numeric[], $6::numeric[], $7::numeric[], $8::numeric[], $9::int[], $10::numeric[],
    $11::numeric[])
ON CONFLICT (llm_id, bucket_start) DO UPDATE SET points = EXCLUDED.points,
    first_equity = EXCLUDED.first_equity, last_equity = EXCLUDED.last_equity,
    highest = EXCLUDED.highest, lowest = EXCLUDED.lowest,
    largest_fall = EXCLUDED.largest_fall, returns = EXCLUDED.returns,
    returns_sum = EXCLUDED.returns_sum, returns_squares = EXCLUDED.returns_squares,
    stale = false
"""


async def stale_buckets(conn: Connection) -> list[asyncpg.Record]:
    """(llm_id, bucket_start) of every bucket retention thinned since it was summed."""
    return list(
        await conn.fetch("SELECT llm_id, bucket_start FROM equity_curve_buckets WHERE stale")
    )


async def save_buckets(conn: Connection, columns: Sequence[Sequence[object]]) -> None:
    """Write buckets given column by column (llm_id, bucket_start, points, first_equity,
    last_equity, highest, lowest, largest_fall, returns, returns_sum, returns_squares)."""
    await conn.execute(_UPSERT, *columns)


async def delete_buckets(conn: Connection, agent_id: str, starts: Sequence[datetime]) -> None:
    await conn.execute(
        "DELETE FROM equity_curve_buckets WHERE llm_id = $1 "
        "AND bucket_start = ANY($2::timestamptz[])",
        agent_id,
        list(starts),
    )


async def mark_stale(conn: Connection, agent_id: str, start: datetime, end: datetime) -> None:
    """``agent_id``'s buckets starting in [start, end) are to be summed again."""
    await conn.execute(
        "UPDATE equity_curve_buckets SET stale = true WHERE llm_id = $1 "
        "AND bucket_start >= $2 AND bucket_start < $3",
        agent_id,
        start,
        end,
    )


async def buckets_between(
    conn: Connection, agent_id: str, start: datetime | None, end: datetime
) -> list[asyncpg.Record]:
    """``agent_id``'s buckets starting in [start, end) (from the first when None), in order."""
    return list(
        await conn.fetch(
            "SELECT * FROM equity_curve_buckets WHERE llm_id = $1 "
            "AND bucket_start >= $2 AND bucket_start < $3 ORDER BY bucket_start",
            agent_id,
            start or datetime.min.replace(tzinfo=UTC),
            end,
        )
    )


# The buckets after each agent's total (all of them without one), in time order.
_NEWER = """
SELECT b.* FROM unnest($1::text[]) AS a (llm_id)
LEFT JOIN equity_curve_totals t ON t.llm_id = a.llm_id
JOIN LATERAL (
    SELECT * FROM equity_curve_buckets b
    WHERE b.llm_id = a.llm_id AND b.bucket_start >= coalesce(t.through, '-infinity')
    ORDER BY b.bucket_start
) b ON true
ORDER BY b.llm_id, b.bucket_start
"""


async def newer_buckets(conn: Connection, agent_ids: Sequence[str]) -> list[asyncpg.Record]:
    """The buckets of ``agent_ids`` after each one's total, by agent then time."""
    return list(await conn.fetch(_NEWER, list(agent_ids)))


# ---------------------------------------------------------------- totals


async def drop_totals_before(
    conn: Connection, agent_ids: Sequence[str], earliest: Sequence[datetime]
) -> None:
    """Drop each agent's total that folded a bucket at or after its ``earliest``."""
    await conn.execute(
        "DELETE FROM equity_curve_totals t USING unnest($1::text[], $2::timestamptz[]) "
        "AS d (llm_id, earliest) WHERE t.llm_id = d.llm_id AND d.earliest < t.through",
        list(agent_ids),
        list(earliest),
    )


# Per agent: its total (if any), the bucket the total should fold up to (exclusive: all
# but the newest ``$1`` of buckets), and its initial balance.
_TOTALS_DUE = """
SELECT a.llm_id, a.initial_balance, t.through, t.last_equity, t.peak, t.worst, t.returns,
       t.returns_sum, t.returns_squares, n.newest - $1::interval AS due
FROM llm_accounts a
JOIN LATERAL (SELECT max(bucket_start) AS newest FROM equity_curve_buckets b
              WHERE b.llm_id = a.llm_id) n ON n.newest IS NOT NULL
LEFT JOIN equity_curve_totals t ON t.llm_id = a.llm_id
WHERE t.through IS NULL OR t.through < n.newest - $1::interval
"""


async def totals_due(conn: Connection, keep: timedelta) -> list[asyncpg.Record]:
    """The agents whose total is missing or behind (all but the newest ``keep`` of buckets)."""
    return list(await conn.fetch(_TOTALS_DUE, keep))


_SAVE_TOTAL = """
INSERT INTO equity_curve_totals (llm_id, through, last_equity, peak, worst, returns,
    returns_sum, returns_squares)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (llm_id) DO UPDATE SET through = EXCLUDED.through,
    last_equity = EXCLUDED.last_equity, peak = EXCLUDED.peak, worst = EXCLUDED.worst,
    returns = EXCLUDED.returns, returns_sum = EXCLUDED.returns_sum,
    returns_squares = EXCLUDED.returns_squares
"""


async def save_total(conn: Connection, agent_id: str, through: datetime, *values: object) -> None:
    """Store ``agent_id``'s total through ``through``: (last_equity, peak, worst, returns,
    returns_sum, returns_squares)."""
    await conn.execute(_SAVE_TOTAL, agent_id, through, *values)


async def totals(conn: Connection, agent_ids: Sequence[str]) -> dict[str, asyncpg.Record]:
    records = await conn.fetch(
        "SELECT * FROM equity_curve_totals WHERE llm_id = ANY($1::text[])", list(agent_ids)
    )
    return {r["llm_id"]: r for r in records}
