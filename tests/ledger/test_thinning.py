"""Thinning old equity snapshots keeps the max drawdown exact, every cycle snapshot, and
each bucket's highest, lowest and last equity (pure, property-tested)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from services.ledger.stats import max_drawdown_pct
from services.ledger.thinning import Snapshot, bucket_start, kept_in_bucket, to_drop

START = datetime(2025, 3, 1, 0, 7, tzinfo=UTC)
INITIAL = Decimal(100)

# An equity curve moves by steps (per mille of the last value) rather than jumping at random:
# a random walk has the falls inside an hour that thinning must not lose. Zero: wiped out.
moves = st.one_of(st.integers(-150, 150), st.integers(-20, 20), st.just(0), st.just(-1000))
steps = st.tuples(
    st.integers(0, 6),  # minutes since the previous snapshot (0: same instant)
    st.sampled_from([*["tick"] * 6, "decision", "cycle"]),
    moves,
)
equities = st.decimals(min_value=0, max_value=300, places=4, allow_nan=False, allow_infinity=False)


def _series(raw: list[tuple[int, str, int]]) -> list[Snapshot]:
    at = START
    equity = INITIAL
    rows: list[Snapshot] = []
    for n, (minutes, kind, move) in enumerate(raw):
        at += timedelta(minutes=minutes)
        equity = (equity * (1000 + move) / 1000).quantize(Decimal("0.000001"))
        rows.append(Snapshot(n + 1, at, f"{kind}:{n}", equity))
    return rows


def _thinned(rows: list[Snapshot], width: timedelta) -> list[Snapshot]:
    dropped = set(to_drop(rows, width))
    return [r for r in rows if r.id not in dropped]


def _drawdown(rows: list[Snapshot], then: list[Decimal] | None = None) -> Decimal:
    """As the stats query measures it: from the initial balance, over the snapshots."""
    return max_drawdown_pct([INITIAL, *(r.equity for r in rows), *(then or [])])


@settings(max_examples=400)
@given(
    raw=st.lists(steps, min_size=1, max_size=60),
    later=st.lists(equities, max_size=10),
    width_minutes=st.sampled_from([15, 60, 240]),
)
def test_thinning_keeps_the_max_drawdown_and_what_charts_need(
    raw: list[tuple[int, str, int]], later: list[Decimal], width_minutes: int
) -> None:
    width = timedelta(minutes=width_minutes)
    rows = _series(raw)
    kept = _thinned(rows, width)

    # Exact, and still exact whatever the curve does afterwards (the recent window, or
    # snapshots not taken yet).
    assert _drawdown(kept) == _drawdown(rows)
    assert _drawdown(kept, later) == _drawdown(rows, later)

    kept_ids = {r.id for r in kept}
    assert {r.id for r in rows if r.source.startswith("cycle:")} <= kept_ids
    buckets: dict[datetime, list[Snapshot]] = defaultdict(list)
    for r in rows:
        buckets[bucket_start(r.at, width)].append(r)
    for bucket in buckets.values():
        values = [r.equity for r in bucket if r.id in kept_ids]
        assert max(values) == max(r.equity for r in bucket)
        assert min(values) == min(r.equity for r in bucket)
        assert bucket[-1].id in kept_ids

    # A second pass over thinned rows drops nothing more: passes do not churn.
    assert to_drop(kept, width) == []


@settings(max_examples=400)
@given(
    bucket=st.lists(
        st.tuples(st.sampled_from(["tick", "decision", "cycle"]), equities), max_size=12
    ),
    before=st.lists(equities, max_size=3),
    later=st.lists(equities, max_size=3),
)
def test_a_thinned_bucket_adds_the_same_drawdown_whatever_comes_before_or_after(
    bucket: list[tuple[str, Decimal]], before: list[Decimal], later: list[Decimal]
) -> None:
    # The step of the proof in services/ledger/thinning.py, one bucket at a time.
    rows = [
        Snapshot(n, START + timedelta(seconds=n), f"{kind}:{n}", equity)
        for n, (kind, equity) in enumerate(bucket)
    ]
    kept = _thinned(rows, timedelta(hours=1))
    full = max_drawdown_pct([*before, *(r.equity for r in rows), *later])
    assert max_drawdown_pct([*before, *(r.equity for r in kept), *later]) == full


def test_the_peak_before_a_fall_is_kept_even_when_it_is_not_the_bucket_high() -> None:
    # 150 -> 90 is a 40 % fall; 160 is the hour's high and 90 its low, but from 100 (the
    # start) to 90 is only 10 %: keeping high, low and last alone would lose the 40 %.
    rows = [
        Snapshot(n, START + timedelta(minutes=n), f"tick:{n}", Decimal(e))
        for n, e in enumerate((100, 150, 120, 90, 130, 160), start=1)
    ]
    kept = _thinned(rows, timedelta(hours=1))
    assert [r.equity for r in kept] == [Decimal(150), Decimal(90), Decimal(160)]
    assert _drawdown(kept) == _drawdown(rows) == Decimal("40.0000")


def test_cycle_snapshots_and_unknown_kinds_are_kept_whatever_their_equity() -> None:
    rows = [
        Snapshot(1, START, "tick:a", Decimal(100)),
        Snapshot(2, START, "cycle:c1", Decimal(101)),
        Snapshot(3, START, "decision:c1:x", Decimal("101.5")),
        Snapshot(4, START, "manual:restate", Decimal(102)),
        Snapshot(5, START, "tick:b", Decimal("102.5")),
        Snapshot(6, START, "tick:c", Decimal(103)),
    ]
    # A rising hour: kept are the cycle's, the unknown kind's, the low (1), the high and
    # last (6); the decision's and the tick in between go.
    assert kept_in_bucket(rows) == {1, 2, 4, 6}


def test_buckets_are_aligned_on_the_epoch_whatever_the_first_snapshot() -> None:
    hour = timedelta(hours=1)
    assert bucket_start(START, hour) == datetime(2025, 3, 1, tzinfo=UTC)
    assert bucket_start(datetime(2025, 3, 1, 23, 59, tzinfo=UTC), timedelta(days=1)) == (
        datetime(2025, 3, 1, tzinfo=UTC)
    )
