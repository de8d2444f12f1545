"""Which old equity snapshots to drop: per agent and time bucket, keep what charts and
statistics need, pure.

In a bucket, the rows kept are every snapshot that is not a tick's or a decision's (a
cycle's snapshot, ``cycle:<id>``, is what per-cycle returns are computed from), the highest
and the lowest equity, the last row, and the peak and trough of the bucket's largest fall.

Why these keep the max drawdown of the whole curve exact (equity is never negative: a
balance cannot go below zero and a position loses at most its margin). Take the curve as
buckets in time order. A bucket entered with a running peak ``P`` adds
``max(fall(P, lowest), largest fall inside the bucket)``, and hands on the running peak
``max(P, highest)``: every point's running peak is ``P`` or a peak inside the bucket, and
a fall from ``P`` is largest at the bucket's lowest point. The thinned bucket has the same
lowest, highest and largest inner fall (it keeps that fall's two rows), so every bucket
adds the same and hands on the same peak, whatever came before or comes after.
``tests/ledger/test_thinning.py`` checks this on random curves.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import groupby

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
HUNDRED = Decimal(100)
# Snapshots thinned; any other kind (cycles, and kinds added later) is kept.
THINNED_KINDS = ("tick:", "decision:")


@dataclass(frozen=True)
class Snapshot:
    id: int
    at: datetime
    source: str
    equity: Decimal


def bucket_start(at: datetime, width: timedelta) -> datetime:
    """The start of the bucket ``at`` falls in; buckets are aligned on the Unix epoch."""
    return EPOCH + ((at - EPOCH) // width) * width


def largest_fall(rows: Sequence[Snapshot]) -> tuple[Snapshot, Snapshot] | None:
    """(peak, trough) of the largest fall from a running peak, in percent of the peak, as
    ``stats.max_drawdown_pct`` measures it; None when the rows never fall."""
    peak: Snapshot | None = None
    worst = Decimal(0)
    pair: tuple[Snapshot, Snapshot] | None = None
    for row in rows:
        if peak is None or row.equity > peak.equity:
            peak = row
        if peak.equity > 0:
            fall = (peak.equity - row.equity) / peak.equity * HUNDRED
            if fall > worst:
                worst, pair = fall, (peak, row)
    return pair


def kept_in_bucket(rows: Sequence[Snapshot]) -> set[int]:
    """Ids to keep of one agent's bucket, its rows in (at, id) order."""
    if not rows:
        return set()
    keep = {r.id for r in rows if not r.source.startswith(THINNED_KINDS)}
    # max and min return the first of equal rows: a second thinning keeps the same ones.
    keep.add(max(rows, key=lambda r: r.equity).id)
    keep.add(min(rows, key=lambda r: r.equity).id)
    keep.add(rows[-1].id)
    fall = largest_fall(rows)
    if fall is not None:
        keep.update(r.id for r in fall)
    return keep


def to_drop(rows: Iterable[Snapshot], width: timedelta) -> list[int]:
    """Ids to delete from one agent's snapshots, given in (at, id) order, whole buckets only."""
    dropped: list[int] = []
    for _, group in groupby(rows, key=lambda r: bucket_start(r.at, width)):
        bucket = list(group)
        keep = kept_in_bucket(bucket)
        dropped += [r.id for r in bucket if r.id not in keep]
    return dropped
