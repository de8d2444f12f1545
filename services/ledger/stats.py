"""Performance statistics of an equity curve and a list of closed trades, pure."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from decimal import Decimal

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


def sharpe_ratio(equity: Sequence[Decimal]) -> Decimal | None:
    """Mean over sample standard deviation of the per-point returns, risk-free rate 0.

    Not annualised: the points are the ledger's snapshots (each cycle and tick), so the
    ratio is per snapshot interval. None with fewer than two returns or no variation.
    """
    rs = returns(equity)
    if len(rs) < 2:
        return None
    mean = sum(rs, ZERO) / len(rs)
    variance = sum(((r - mean) ** 2 for r in rs), ZERO) / (len(rs) - 1)
    if variance == 0:
        return None
    return (mean / variance.sqrt()).quantize(RATIO_STEP)


def average(values: Sequence[Decimal]) -> Decimal | None:
    return sum(values, ZERO) / len(values) if values else None


def net_return_pct(equity: Decimal, llm_cost: Decimal, initial_balance: Decimal) -> Decimal:
    """Return after paying for the model's calls, in percent of the initial balance."""
    return ((equity - llm_cost - initial_balance) / initial_balance * HUNDRED).quantize(
        PERCENT_STEP
    )
