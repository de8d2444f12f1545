"""The curve's max drawdown and Sharpe ratio from hourly buckets equal the full computation."""

from __future__ import annotations

import random
from decimal import Decimal

from services.ledger import stats
from services.ledger.curve import Curve, split


def _walk(rng: random.Random, n: int) -> list[Decimal]:
    values = [Decimal(100)]
    for _ in range(n):
        step = Decimal(rng.randint(-300, 310)) / Decimal(1000)
        values.append(max(Decimal(0), values[-1] + step).quantize(Decimal("0.000001")))
    return values


def test_any_split_into_segments_gives_the_full_figures() -> None:
    rng = random.Random(7)
    for n in (1, 2, 3, 50, 400):
        values = _walk(rng, n)
        for _ in range(5):
            cuts = rng.sample(range(1, len(values)), k=min(len(values) - 1, rng.randint(0, 20)))
            curve = Curve.of(split(values, cuts))
            assert curve.max_drawdown_pct == stats.max_drawdown_pct(values)
            assert curve.sharpe_ratio == stats.sharpe_ratio(values)


def test_a_curve_through_zero_skips_the_returns_from_zero() -> None:
    values = [Decimal(100), Decimal(50), Decimal(0), Decimal(0), Decimal(10), Decimal(12)]
    for cut in range(1, len(values)):
        curve = Curve.of(split(values, [cut]))
        assert curve.max_drawdown_pct == stats.max_drawdown_pct(values) == Decimal("100.0000")
        assert curve.sharpe_ratio == stats.sharpe_ratio(values)


def test_exact_sums_agree_with_the_two_pass_sharpe_to_the_digit_shown() -> None:
    """The former computation (mean, then squared deviations, 28 digits) gives the same
    quantized ratio on random curves: the exact sums changed no figure anyone saw."""
    rng = random.Random(3)
    for _ in range(30):
        rs = stats.returns(_walk(rng, rng.randint(3, 300)))
        mean = sum(rs, Decimal(0)) / len(rs)
        variance = sum(((r - mean) ** 2 for r in rs), Decimal(0)) / (len(rs) - 1)
        if variance == 0:
            continue
        two_pass = (mean / variance.sqrt()).quantize(stats.RATIO_STEP)
        assert stats.sharpe_from_sums(stats.ReturnSums.of(rs)) == two_pass
