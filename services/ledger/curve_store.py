"""The equity curves' hourly summaries in ``equity_curve_buckets``, kept up to date.

:func:`catch_up` sums again every bucket a new snapshot fell in (new: an id above the
``equity_curve_position``; a snapshot may land in any bucket, a late tick's in an old one)
and every bucket retention thinned (``stale``). Snapshots are written by the ledger's one
intake consumer, a transaction at a time, so their ids become visible in order and the
position never passes one still to come. :class:`CurveKeeper` runs it every few seconds;
``/trading/stats`` runs it once more.

Each agent's curve folded through its older buckets is kept in ``equity_curve_totals``
(all but the newest two hours of its snapshots, so a late tick rarely lands behind it):
``/trading/stats`` reads that one row and folds the few newer buckets, however long the
history. A bucket behind the total summed again (a late snapshot, retention thinning it)
drops the total; :func:`catch_up` folds it anew from the buckets, once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg

from services.ledger.curve import Curve, Segment
from services.ledger.database import acquire
from services.ledger.stats import ReturnSums
from services.ledger.thinning import bucket_start

log = logging.getLogger(__name__)

BUCKET = timedelta(hours=1)
# New snapshots summed per transaction: a long backlog (a ledger upgraded onto a month of
# history) is worked off in steps that each hold their locks briefly.
CHUNK = 50_000

_BUCKET_ROWS = """
SELECT b.start, e.equity
FROM unnest($2::timestamptz[]) AS b (start)
CROSS JOIN LATERAL (
    SELECT at, id, equity FROM equity_snapshots
    WHERE llm_id = $1 AND at >= b.start AND at < b.start + $3::interval
) e
ORDER BY b.start, e.at, e.id
"""

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


async def catch_up(pool: asyncpg.Pool) -> int:
    """Sum every bucket touched since the last call; the number of buckets summed."""
    total = 0
    while True:
        async with acquire(pool) as conn, conn.transaction():
            summed, more = await _step(conn)
        total += summed
        if not more:
            return total


async def _step(conn: asyncpg.Connection) -> tuple[int, bool]:
    summed, more, dirty = await _sum_new(conn)
    await _drop_overtaken_totals(conn, dirty)
    await _advance_totals(conn)
    return summed, more


async def _sum_new(conn: asyncpg.Connection) -> tuple[int, bool, dict[str, set[datetime]]]:
    folded = int(await conn.fetchval("SELECT folded_id FROM equity_curve_position FOR UPDATE"))
    records = await conn.fetch(
        "SELECT id, llm_id, at FROM equity_snapshots WHERE id > $1 ORDER BY id LIMIT $2",
        folded,
        CHUNK,
    )
    dirty: dict[str, set[datetime]] = defaultdict(set)
    for r in records:
        dirty[r["llm_id"]].add(bucket_start(r["at"], BUCKET))
    for r in await conn.fetch("SELECT llm_id, bucket_start FROM equity_curve_buckets WHERE stale"):
        dirty[r["llm_id"]].add(r["bucket_start"])
    for llm_id, starts in dirty.items():
        await _sum_buckets(conn, llm_id, sorted(starts))
    if records:
        await conn.execute("UPDATE equity_curve_position SET folded_id = $1", records[-1]["id"])
    return sum(len(s) for s in dirty.values()), len(records) == CHUNK, dirty


async def _drop_overtaken_totals(
    conn: asyncpg.Connection, dirty: Mapping[str, set[datetime]]
) -> None:
    """A total that folded a bucket summed again is no longer the fold of the buckets."""
    if not dirty:
        return
    agents = list(dirty)
    await conn.execute(
        "DELETE FROM equity_curve_totals t USING unnest($1::text[], $2::timestamptz[]) "
        "AS d (llm_id, earliest) WHERE t.llm_id = d.llm_id AND d.earliest < t.through",
        agents,
        [min(dirty[a]) for a in agents],
    )


# Per agent: its total (if any), the bucket the total should fold up to (exclusive: all
# but the newest two hours of buckets), and its initial balance.
_TOTALS_DUE = """
SELECT a.llm_id, a.initial_balance, t.through, t.last_equity, t.peak, t.worst, t.returns,
       t.returns_sum, t.returns_squares, n.newest - $1::interval AS due
FROM llm_accounts a
JOIN LATERAL (SELECT max(bucket_start) AS newest FROM equity_curve_buckets b
              WHERE b.llm_id = a.llm_id) n ON n.newest IS NOT NULL
LEFT JOIN equity_curve_totals t ON t.llm_id = a.llm_id
WHERE t.through IS NULL OR t.through < n.newest - $1::interval
"""

_SAVE_TOTAL = """
INSERT INTO equity_curve_totals (llm_id, through, last_equity, peak, worst, returns,
    returns_sum, returns_squares)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (llm_id) DO UPDATE SET through = EXCLUDED.through,
    last_equity = EXCLUDED.last_equity, peak = EXCLUDED.peak, worst = EXCLUDED.worst,
    returns = EXCLUDED.returns, returns_sum = EXCLUDED.returns_sum,
    returns_squares = EXCLUDED.returns_squares
"""


async def _advance_totals(conn: asyncpg.Connection) -> None:
    for r in await conn.fetch(_TOTALS_DUE, BUCKET):
        if r["through"] is None:
            curve, start = _opening(r["initial_balance"]), None
        else:
            curve, start = _stored(r), r["through"]
        curve = _fold(
            curve,
            await conn.fetch(
                "SELECT * FROM equity_curve_buckets WHERE llm_id = $1 "
                "AND bucket_start >= $2 AND bucket_start < $3 ORDER BY bucket_start",
                r["llm_id"],
                start or datetime.min.replace(tzinfo=UTC),
                r["due"],
            ),
        )
        await conn.execute(
            _SAVE_TOTAL,
            r["llm_id"],
            r["due"],
            curve.last,
            curve.peak,
            curve.worst,
            curve.sums.count,
            curve.sums.total,
            curve.sums.squares,
        )


def _opening(initial_balance: Decimal) -> Curve:
    return Curve().extend(Segment.of([initial_balance]))


def _stored(r: asyncpg.Record) -> Curve:
    sums = ReturnSums(r["returns"], r["returns_sum"], r["returns_squares"])
    return Curve(r["last_equity"], r["peak"], r["worst"], sums)


def _segment(r: asyncpg.Record) -> Segment:
    return Segment(
        points=r["points"],
        first=r["first_equity"],
        last=r["last_equity"],
        highest=r["highest"],
        lowest=r["lowest"],
        largest_fall=r["largest_fall"],
        sums=ReturnSums(r["returns"], r["returns_sum"], r["returns_squares"]),
    )


def _fold(curve: Curve, buckets: Sequence[asyncpg.Record]) -> Curve:
    for r in buckets:
        curve = curve.extend(_segment(r))
    return curve


async def _sum_buckets(conn: asyncpg.Connection, llm_id: str, starts: list[datetime]) -> None:
    rows = await conn.fetch(_BUCKET_ROWS, llm_id, starts, BUCKET)
    values: dict[datetime, list[Decimal]] = defaultdict(list)
    for r in rows:
        values[r["start"]].append(r["equity"])
    empty = [s for s in starts if s not in values]
    if empty:  # every snapshot of the bucket is gone
        await conn.execute(
            "DELETE FROM equity_curve_buckets WHERE llm_id = $1 "
            "AND bucket_start = ANY($2::timestamptz[])",
            llm_id,
            empty,
        )
    segments = [(start, Segment.of(v)) for start, v in values.items()]
    if not segments:
        return
    columns: list[list[object]] = [[] for _ in range(11)]
    for start, s in segments:
        row = (
            llm_id,
            start,
            s.points,
            s.first,
            s.last,
            s.highest,
            s.lowest,
            s.largest_fall,
            s.sums.count,
            s.sums.total,
            s.sums.squares,
        )
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    await conn.execute(_UPSERT, *columns)


async def mark_stale(conn: asyncpg.Connection, llm_id: str, start: datetime, end: datetime) -> None:
    """Retention thinned ``llm_id``'s snapshots in [start, end): sum those buckets again."""
    await conn.execute(
        "UPDATE equity_curve_buckets SET stale = true WHERE llm_id = $1 "
        "AND bucket_start >= $2 AND bucket_start < $3",
        llm_id,
        bucket_start(start, BUCKET),
        end,
    )


async def curves(
    conn: asyncpg.Connection, initial_balances: Mapping[str, Decimal]
) -> dict[str, Curve]:
    """Each agent's curve: its initial balance, then its buckets in time order; from its
    stored total on, when it has one."""
    agents = list(initial_balances)
    totals = {
        r["llm_id"]: r
        for r in await conn.fetch(
            "SELECT * FROM equity_curve_totals WHERE llm_id = ANY($1::text[])", agents
        )
    }
    result = {
        llm_id: _stored(totals[llm_id]) if llm_id in totals else _opening(balance)
        for llm_id, balance in initial_balances.items()
    }
    newer: dict[str, list[asyncpg.Record]] = defaultdict(list)
    for r in await conn.fetch(_NEWER, agents):
        newer[r["llm_id"]].append(r)
    return {llm_id: _fold(curve, newer[llm_id]) for llm_id, curve in result.items()}


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


class CurveKeeper:
    """Sums new snapshots into the buckets every ``interval`` seconds."""

    def __init__(self, pool: asyncpg.Pool, interval: float = 5.0) -> None:
        self._pool = pool
        self._interval = interval

    async def run(self) -> None:
        while True:
            try:
                await catch_up(self._pool)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("summing equity curves failed (%r), retrying", exc)
            await asyncio.sleep(self._interval)
