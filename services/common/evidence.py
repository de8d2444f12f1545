"""Statistics of per-cycle returns, the season report's and the live leaderboard's (pure:
arrays in, floats out).

A per-cycle return is ``equity[t] / equity[t-1] - 1`` between two consecutive cycles.
Ratios are annualised with the number of cycles in a year that the caller states
(:mod:`services.common.annual`: 105,120 five-minute cycles, around the clock).
Intervals are 95 % percentile intervals of a stationary block bootstrap (``arch``),
whose mean block length is ``arch.bootstrap.optimal_block_length`` of the series
resampled (Politis and White), at least the cube root of its length (see
``block_length``), so the autocorrelation of returns stays inside the blocks; every
resample draws from the numpy ``Generator`` given, so one seed gives one report.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from arch.bootstrap import StationaryBootstrap, optimal_block_length
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests

Returns = npt.NDArray[np.float64]
Indices = npt.NDArray[np.int64]

LEVEL = 0.95
# arch's optimal_block_length needs this many values (fewer: an error, not an estimate).
MIN_ESTIMATED = 8
BATCH_VALUES = 2_000_000  # resampled values held at once
DEFAULT_REPS = 2000  # bootstrap resamples per interval and comparison


@dataclass(frozen=True)
class Interval:
    value: float
    lower: float
    upper: float


@dataclass(frozen=True)
class Comparison:
    """A against B on the same cycles: how often A's mean per-cycle return is the higher
    one across resamples, and the two-sided p-value of "the mean difference is zero"."""

    p_a_beats_b: float
    p_value: float
    mean_difference: float


def per_cycle_returns(series: Returns) -> Returns:
    """Per-cycle returns; after an equity of zero (an account wiped out) each one is 0:
    nothing is left to gain or lose, and no return is undefined."""
    before, after = series[:-1], series[1:]
    ratio = np.divide(after, before, out=np.ones_like(after), where=before > 0.0)
    return ratio - 1.0


def total_return(r: Returns) -> float:
    return float(np.prod(1.0 + r) - 1.0)


def sharpe(r: Returns, periods_per_year: int) -> float:
    """Mean over sample standard deviation of per-cycle returns (no risk-free rate), times
    the square root of the cycles per year; 0 for a flat series."""
    return float(_sharpe_rows(r[np.newaxis, :], periods_per_year)[0])


def sortino(r: Returns, periods_per_year: int) -> float | None:
    """Mean over downside deviation (root mean square of the negative returns, over every
    cycle); undefined (None) without a losing cycle."""
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    if downside == 0.0:
        return None
    return float(np.mean(r)) / downside * math.sqrt(periods_per_year)


def max_drawdown(r: Returns) -> float:
    """The largest fall from a peak of the equity curve (the start included), as a
    fraction of the peak: 0.2 is 20 %."""
    equity = np.concatenate(([1.0], np.cumprod(1.0 + r)))
    peaks = np.maximum.accumulate(equity)
    return float(np.max(1.0 - equity / peaks))


def calmar(r: Returns, periods_per_year: int) -> float | None:
    """Annualised (compounded) return over max drawdown; undefined without a drawdown,
    or when the annualised return is beyond a float (a few cycles' gain compounded over
    a year)."""
    drawdown = max_drawdown(r)
    if drawdown == 0.0 or len(r) == 0:
        return None
    try:
        annual = float((1.0 + total_return(r)) ** (periods_per_year / len(r))) - 1.0
    except OverflowError:
        return None
    return annual / drawdown


def alpha_beta(r: Returns, benchmark: Returns, periods_per_year: int) -> tuple[float, float]:
    """OLS of the agent's per-cycle returns on the benchmark's: the intercept times the
    cycles per year (alpha, annualised, simple) and the slope (beta)."""
    alphas, betas = _ols_rows(r[np.newaxis, :], benchmark[np.newaxis, :])
    return float(alphas[0]) * periods_per_year, float(betas[0])


def block_length(x: Returns) -> float:
    """The stationary bootstrap's mean block length for ``x``: Politis and White's
    estimate, but at least the cube root of the series' length. The estimate minimises
    the error of the variance, and is short enough that the bootstrap understates the
    variance of autocorrelated returns (intervals of 92 % instead of 95 % with AR(1)
    returns, coefficient 0.3, over 1,000 cycles); the floor keeps them near 93-94 %.
    Under ``MIN_ESTIMATED`` returns there is no estimate: the floor it is."""
    floor = max(1.0, float(np.cbrt(len(x))))
    if len(x) < MIN_ESTIMATED or float(np.std(x)) == 0.0:
        return floor
    # A series flat for long stretches divides zero by zero in arch (a NaN estimate).
    with np.errstate(invalid="ignore", divide="ignore"):
        estimate = float(optimal_block_length(x)["stationary"].iloc[0])
    return max(floor, estimate) if math.isfinite(estimate) else floor


def resample_indices(n: int, block: float, reps: int, rng: np.random.Generator) -> Indices:
    """``reps`` rows of ``n`` indices, each a stationary bootstrap resample of 0..n-1."""
    # A mean block length: any number from 1 up, though arch's annotation says int.
    bootstrap = StationaryBootstrap(block, np.arange(n), seed=rng)  # type: ignore[arg-type]
    rows = [bootstrap.index for _ in bootstrap.bootstrap(reps)]
    return np.asarray(rows, dtype=np.int64)


def _interval(value: float, draws: npt.NDArray[np.float64]) -> Interval:
    tail = (1.0 - LEVEL) / 2.0 * 100.0
    lower, upper = np.percentile(draws, [tail, 100.0 - tail])
    return Interval(value, float(lower), float(upper))


def _sharpe_rows(rows: npt.NDArray[np.float64], periods_per_year: int) -> npt.NDArray[np.float64]:
    std = rows.std(axis=1, ddof=1) if rows.shape[1] > 1 else np.zeros(rows.shape[0])
    mean = rows.mean(axis=1)
    safe = np.where(std > 0.0, std, 1.0)
    return np.where(std > 0.0, mean / safe, 0.0) * math.sqrt(periods_per_year)


def _ols_rows(
    y: npt.NDArray[np.float64], x: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Row by row, intercept and slope of y on x (slope 0 where x does not vary)."""
    x_centred = x - x.mean(axis=1, keepdims=True)
    y_centred = y - y.mean(axis=1, keepdims=True)
    variance = (x_centred**2).sum(axis=1)
    safe = np.where(variance > 0.0, variance, 1.0)
    slope = np.where(variance > 0.0, (x_centred * y_centred).sum(axis=1) / safe, 0.0)
    return y.mean(axis=1) - slope * x.mean(axis=1), slope


def _draws(
    n: int,
    block: float,
    reps: int,
    rng: np.random.Generator,
    statistic: Callable[[Indices], npt.NDArray[np.float64]],
) -> npt.NDArray[np.float64]:
    """``statistic`` of every resample, computed a batch of rows at a time (a season of
    17,000 cycles and 2,000 resamples would otherwise hold a quarter of a gigabyte)."""
    batch = max(1, BATCH_VALUES // max(n, 1))
    parts = []
    for start in range(0, reps, batch):
        parts.append(statistic(resample_indices(n, block, min(batch, reps - start), rng)))
    return np.concatenate(parts)


@dataclass(frozen=True)
class AgentIntervals:
    return_: Interval
    sharpe: Interval
    alpha: Interval


def agent_intervals(
    r: Returns,
    benchmark: Returns,
    periods_per_year: int,
    rng: np.random.Generator,
    reps: int = DEFAULT_REPS,
) -> AgentIntervals:
    """Total return, Sharpe and annualised alpha with their intervals, from the same
    resamples of the cycles, taken in pairs (agent, benchmark)."""

    def statistic(index: Indices) -> npt.NDArray[np.float64]:
        rows = r[index]
        alphas, _ = _ols_rows(rows, benchmark[index])
        return np.stack(
            [
                np.prod(1.0 + rows, axis=1) - 1.0,
                _sharpe_rows(rows, periods_per_year),
                alphas * periods_per_year,
            ],
            axis=1,
        )

    draws = _draws(len(r), block_length(r), reps, rng, statistic)
    return AgentIntervals(
        _interval(total_return(r), draws[:, 0]),
        _interval(sharpe(r, periods_per_year), draws[:, 1]),
        _interval(alpha_beta(r, benchmark, periods_per_year)[0], draws[:, 2]),
    )


def return_interval(r: Returns, rng: np.random.Generator, reps: int = DEFAULT_REPS) -> Interval:
    """Total return, with its interval (each resample's compounded return)."""
    draws = _draws(len(r), block_length(r), reps, rng, lambda i: np.prod(1.0 + r[i], axis=1) - 1.0)
    return _interval(total_return(r), draws)


def mean_interval(r: Returns, rng: np.random.Generator, reps: int = DEFAULT_REPS) -> Interval:
    """Mean per-cycle return, with its interval."""
    draws = _draws(len(r), block_length(r), reps, rng, lambda i: r[i].mean(axis=1))
    return _interval(float(np.mean(r)), draws)


def sharpe_interval(
    r: Returns, periods_per_year: int, rng: np.random.Generator, reps: int = DEFAULT_REPS
) -> Interval:
    draws = _draws(
        len(r), block_length(r), reps, rng, lambda i: _sharpe_rows(r[i], periods_per_year)
    )
    return _interval(sharpe(r, periods_per_year), draws)


def alpha_interval(
    r: Returns,
    benchmark: Returns,
    periods_per_year: int,
    rng: np.random.Generator,
    reps: int = DEFAULT_REPS,
) -> Interval:
    """Annualised alpha, with its interval: cycles resampled in pairs (agent, benchmark)."""
    return agent_intervals(r, benchmark, periods_per_year, rng, reps).alpha


def compare(
    a: Returns, b: Returns, rng: np.random.Generator, reps: int = DEFAULT_REPS
) -> Comparison:
    """Paired per-cycle differences ``a - b``, block-bootstrapped. ``p_a_beats_b`` is the
    share of resamples whose mean difference is above zero (ties count half); the p-value
    is that of the centred resamples' means as far from zero as the one observed."""
    d = a - b
    observed = float(np.mean(d))
    if float(np.std(d)) == 0.0:
        return Comparison(1.0 if observed > 0 else 0.0 if observed < 0 else 0.5, 1.0, observed)
    means = _draws(len(d), block_length(d), reps, rng, lambda i: d[i].mean(axis=1))
    beats = float(np.mean(means > 0.0) + 0.5 * np.mean(means == 0.0))
    centred = means - observed
    p_value = float((1 + np.sum(np.abs(centred) >= abs(observed))) / (reps + 1))
    return Comparison(beats, p_value, observed)


def holm(p_values: list[float]) -> list[float]:
    """Holm-adjusted p-values (family-wise error), in the order given."""
    if not p_values:
        return []
    adjusted = multipletests(p_values, alpha=1.0 - LEVEL, method="holm")[1]
    return [float(p) for p in adjusted]


def spread(values: list[float]) -> dict[str, float]:
    """Across runs: mean, sample standard deviation (0 for one run), min and max."""
    array = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(array.mean()),
        "std": float(array.std(ddof=1)) if len(array) > 1 else 0.0,
        "min": float(array.min()),
        "max": float(array.max()),
    }


def ranks(values: dict[str, float]) -> dict[str, int]:
    """1 for the highest value; ties share the better rank."""
    ordered = scipy_stats.rankdata([-v for v in values.values()], method="min")
    return {key: int(rank) for key, rank in zip(values, ordered, strict=True)}
