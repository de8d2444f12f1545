"""Performance statistics of an equity curve and a list of closed trades, pure."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import MAX_PREC, Context, Decimal

from services.ledger.accounting import HUNDRED, PERCENT_STEP, ZERO

RATIO_STEP = Decimal("0.0001")


def max_drawdown_pct(equity: Sequence[Decimal]) -> Decimal:
    """The largest fall from a running peak, in percent of that peak (0 for a flat curve)."""
    peak: Decimal | None = None
    worst = ZERO
    for value in equity:
        if peak is None or value > peak:
            peak = value
        if peak > 0:
            worst = max(worst, (peak - value) / peak * HUNDRED)
    return worst.quantize(PERCENT_STEP)


def returns(equity: Sequence[Decimal]) -> list[Decimal]:
    """Simple returns between successive points (points at zero equity are skipped)."""
    return [b / a - 1 for a, b in itertools.pairwise(equity) if a > 0]


# Sums of returns and of their squares are kept exact (a return has at most a few dozen
# digits), so they do not depend on the order or grouping they were added in: a curve
# summed bucket by bucket gives the very same figures as summed point by point.
_EXACT = Context(prec=MAX_PREC)
_RATIO = Context(prec=40)


@dataclass(frozen=True, slots=True)
class ReturnSums:
    """How many returns, their sum and the sum of their squares, exact."""

    count: int = 0
    total: Decimal = ZERO
    squares: Decimal = ZERO

    def add(self, value: Decimal) -> ReturnSums:
        return ReturnSums(
            self.count + 1,
            _EXACT.add(self.total, value),
            _EXACT.add(self.squares, _EXACT.multiply(value, value)),
        )

    def merge(self, other: ReturnSums) -> ReturnSums:
        return ReturnSums(
            self.count + other.count,
            _EXACT.add(self.total, other.total),
            _EXACT.add(self.squares, other.squares),
        )

    @classmethod
    def of(cls, values: Sequence[Decimal]) -> ReturnSums:
        return functools.reduce(ReturnSums.add, values, cls())


def sharpe_from_sums(sums: ReturnSums) -> Decimal | None:
    """Mean over sample standard deviation of the returns summed in ``sums``."""
    n = sums.count
    if n < 2:
        return None
    # n * (n - 1) * variance, exact: zero exactly when every return is the same.
    spread = _EXACT.subtract(
        _EXACT.multiply(Decimal(n), sums.squares), _EXACT.multiply(sums.total, sums.total)
    )
    if spread <= 0:
        return None
    variance = _RATIO.divide(spread, Decimal(n * (n - 1)))
    mean = _RATIO.divide(sums.total, Decimal(n))
    return _RATIO.divide(mean, _RATIO.sqrt(variance)).quantize(RATIO_STEP)


def sharpe_ratio(equity: Sequence[Decimal]) -> Decimal | None:
    """Mean over sample standard deviation of the per-point returns, risk-free rate 0.

    Not annualised: the points are the ledger's snapshots (each cycle and tick), so the
    ratio is per snapshot interval. None with fewer than two returns or no variation.
    """
    return sharpe_from_sums(ReturnSums.of(returns(equity)))


def average(values: Sequence[Decimal]) -> Decimal | None:
    return sum(values, ZERO) / len(values) if values else None


def net_return_pct(equity: Decimal, llm_cost: Decimal, initial_balance: Decimal) -> Decimal:
    """Return after paying for the model's calls, in percent of the initial balance."""
    return ((equity - llm_cost - initial_balance) / initial_balance * HUNDRED).quantize(
        PERCENT_STEP
    )
