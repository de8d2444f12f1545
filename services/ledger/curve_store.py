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
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal

import asyncpg

from services.ledger import sql
from services.ledger.curve import Curve, Segment
from services.ledger.database import acquire
from services.ledger.stats import ReturnSums
from services.ledger.thinning import bucket_start

log = logging.getLogger(__name__)

BUCKET = timedelta(hours=1)
# New snapshots summed per transaction: a long backlog (a ledger upgraded onto a month of
# history) is worked off in steps that each hold their locks briefly.
CHUNK = 50_000


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
    folded = await sql.curves.folded_id(conn)
    records = await sql.equity.new_snapshots(conn, folded, CHUNK)
    dirty: dict[str, set[datetime]] = defaultdict(set)
    for r in records:
        dirty[r["llm_id"]].add(bucket_start(r["at"], BUCKET))
    for r in await sql.curves.stale_buckets(conn):
        dirty[r["llm_id"]].add(r["bucket_start"])
    for agent_id, starts in dirty.items():
        await _sum_buckets(conn, agent_id, sorted(starts))
    if records:
        await sql.curves.save_folded_id(conn, records[-1]["id"])
    return sum(len(s) for s in dirty.values()), len(records) == CHUNK, dirty


async def _drop_overtaken_totals(
    conn: asyncpg.Connection, dirty: Mapping[str, set[datetime]]
) -> None:
    """A total that folded a bucket summed again is no longer the fold of the buckets."""
    if not dirty:
        return
    agents = list(dirty)
    await sql.curves.drop_totals_before(conn, agents, [min(dirty[a]) for a in agents])


async def _advance_totals(conn: asyncpg.Connection) -> None:
    # All but the newest two hours of buckets: a late tick rarely lands behind a total.
    for r in await sql.curves.totals_due(conn, BUCKET):
        if r["through"] is None:
            curve, start = _opening(r["initial_balance"]), None
        else:
            curve, start = _stored(r), r["through"]
        buckets = await sql.curves.buckets_between(conn, r["llm_id"], start, r["due"])
        curve = curve.extend_all(map(_segment, buckets))
        await sql.curves.save_total(
            conn,
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


def _sums(r: asyncpg.Record) -> ReturnSums:
    return ReturnSums(r["returns"], r["returns_sum"], r["returns_squares"])


def _stored(r: asyncpg.Record) -> Curve:
    return Curve(r["last_equity"], r["peak"], r["worst"], _sums(r))


def _segment(r: asyncpg.Record) -> Segment:
    return Segment(
        points=r["points"],
        first=r["first_equity"],
        last=r["last_equity"],
        highest=r["highest"],
        lowest=r["lowest"],
        largest_fall=r["largest_fall"],
        sums=_sums(r),
    )


async def _sum_buckets(conn: asyncpg.Connection, agent_id: str, starts: list[datetime]) -> None:
    rows = await sql.equity.bucket_equities(conn, agent_id, starts, BUCKET)
    values: dict[datetime, list[Decimal]] = defaultdict(list)
    for r in rows:
        values[r["start"]].append(r["equity"])
    empty = [s for s in starts if s not in values]
    if empty:  # every snapshot of the bucket is gone
        await sql.curves.delete_buckets(conn, agent_id, empty)
    segments = [(start, Segment.of(v)) for start, v in values.items()]
    if not segments:
        return
    columns: list[list[object]] = [[] for _ in range(11)]
    for start, s in segments:
        row = (
            agent_id,
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
    await sql.curves.save_buckets(conn, columns)


async def mark_stale(
    conn: asyncpg.Connection, agent_id: str, start: datetime, end: datetime
) -> None:
    """Retention thinned ``agent_id``'s snapshots in [start, end): sum those buckets again."""
    await sql.curves.mark_stale(conn, agent_id, bucket_start(start, BUCKET), end)


async def curves(
    conn: asyncpg.Connection, initial_balances: Mapping[str, Decimal]
) -> dict[str, Curve]:
    """Each agent's curve: its initial balance, then its buckets in time order; from its
    stored total on, when it has one."""
    agents = list(initial_balances)
    totals = await sql.curves.totals(conn, agents)
    result = {
        agent_id: _stored(totals[agent_id]) if agent_id in totals else _opening(balance)
        for agent_id, balance in initial_balances.items()
    }
    newer: dict[str, list[asyncpg.Record]] = defaultdict(list)
    for r in await sql.curves.newer_buckets(conn, agents):
        newer[r["llm_id"]].append(r)
    return {
        agent_id: curve.extend_all(map(_segment, newer[agent_id]))
        for agent_id, curve in result.items()
    }


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
