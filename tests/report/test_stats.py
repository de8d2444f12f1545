"""The report's statistics are right: known values, and on simulated seasons the intervals
cover the truth as often as they say, the pairwise test keeps its size and finds an edge.

Simulated per-cycle returns are AR(1): ``r_t = mu + e_t``, ``e_t = phi * e_{t-1} + z_t``,
``z_t`` normal with deviation ``SIGMA`` (a volatile five-minute market: 0.2 % a cycle).
Each simulated season is 1,000 cycles (three and a half days of five-minute cycles) and
each bootstrap 400 resamples, so that 400 seasons take seconds, not minutes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.signal import lfilter

from devstack.report import DEFAULT_REPS
from services.common import evidence as stats
from services.common.annual import CYCLES_PER_YEAR_5M

CYCLES = 1000
SEASONS = 400
REPS = 400
SIGMA = 0.002
PHI = 0.3
OWN_PHI = 0.1
PPY = CYCLES_PER_YEAR_5M


def ar1(rng: np.random.Generator, mu: float, phi: float = PHI, n: int = CYCLES) -> np.ndarray:
    burn_in = 200
    shocks = rng.standard_normal(n + burn_in) * SIGMA
    noise: np.ndarray = lfilter([1.0], [1.0, -phi], shocks)[burn_in:]
    return mu + noise


def test_known_values() -> None:
    r = np.array([0.1, -0.5, 0.2, 0.5])
    assert stats.total_return(r) == pytest.approx(1.1 * 0.5 * 1.2 * 1.5 - 1)
    # Peak 1.1, trough 0.55: half of the peak lost.
    assert stats.max_drawdown(r) == pytest.approx(0.5)
    assert stats.max_drawdown(np.array([0.01, 0.02])) == 0.0
    assert stats.calmar(np.array([0.01, 0.02]), PPY) is None
    assert stats.sharpe(r, 4) == pytest.approx(np.mean(r) / np.std(r, ddof=1) * 2)
    assert stats.sharpe(np.zeros(10), PPY) == 0.0
    downside = math.sqrt(0.25 / 4)
    assert stats.sortino(r, 4) == pytest.approx(np.mean(r) / downside * 2)
    assert stats.sortino(np.array([0.01, 0.0]), PPY) is None
    assert stats.calmar(r, 4) == pytest.approx(stats.total_return(r) / 0.5)  # a year of 4
    assert stats.ranks({"a": 1.0, "b": 3.0, "c": 1.0}) == {"a": 2, "b": 1, "c": 2}
    assert stats.spread([1.0, 3.0]) == {
        "mean": 2.0,
        "std": pytest.approx(math.sqrt(2)),
        "min": 1.0,
        "max": 3.0,
    }


def test_the_report_resamples_as_often_as_the_statistics_by_default() -> None:
    assert DEFAULT_REPS == stats.DEFAULT_REPS


def test_short_and_mostly_flat_series_have_a_block_length(recwarn: pytest.WarningsRecorder) -> None:
    # arch's estimate fails below eight returns and divides by zero on long flat stretches.
    for n in range(1, 12):
        noisy = np.random.default_rng(n).normal(size=n)
        lone = np.zeros(n)
        lone[-1] = 0.01
        for x in (noisy, lone):
            block = stats.block_length(x)
            assert math.isfinite(block) and block >= 1.0
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_holm_multiplies_the_smallest_p_value_by_the_number_of_tests() -> None:
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([]) == []


def test_btc_against_itself_has_beta_one_and_alpha_zero() -> None:
    btc = ar1(np.random.default_rng(1), 0.0001)
    alpha, beta = stats.alpha_beta(btc, btc, PPY)
    assert beta == pytest.approx(1.0)
    assert alpha == pytest.approx(0.0, abs=1e-9)
    interval = stats.alpha_interval(btc, btc, PPY, np.random.default_rng(2), reps=200)
    assert interval.lower == pytest.approx(0.0, abs=1e-9)
    assert interval.upper == pytest.approx(0.0, abs=1e-9)


def test_alpha_and_beta_of_a_leveraged_agent_with_skill() -> None:
    rng = np.random.default_rng(3)
    btc = ar1(rng, 0.0, n=5000)
    skill = 0.0005  # a cycle: 52.6 a year
    agent = skill + 0.5 * btc + 0.0002 * rng.standard_normal(5000)
    alpha, beta = stats.alpha_beta(agent, btc, PPY)
    assert beta == pytest.approx(0.5, abs=0.01)
    interval = stats.alpha_interval(agent, btc, PPY, rng, reps=REPS)
    assert interval.lower < skill * PPY < interval.upper
    assert interval.lower > 0
    assert interval.value == pytest.approx(alpha)


def test_the_same_seed_gives_the_same_intervals() -> None:
    r = ar1(np.random.default_rng(4), 0.0)
    first = stats.sharpe_interval(r, PPY, np.random.default_rng(5), reps=REPS)
    again = stats.sharpe_interval(r, PPY, np.random.default_rng(5), reps=REPS)
    other = stats.sharpe_interval(r, PPY, np.random.default_rng(6), reps=REPS)
    assert first == again
    assert first != other
    assert first.lower < first.value < first.upper


def test_intervals_of_the_total_return_cover_the_truth_in_95_percent_of_seasons() -> None:
    # The truth: the expected compounded return of a season, E[prod(1 + r)] - 1 (the
    # shocks' autocovariance adds a little to (1 + mu) ** n - 1), from the model's moments.
    rng = np.random.default_rng(12)
    mu = 0.0005
    lags = np.arange(1, CYCLES)
    variance = SIGMA**2 / (1 - PHI**2)
    # log(1 + r) ~ r - r^2/2: the mean log-return, and the variance of its sum.
    mean_log = math.log1p(mu) - variance / (2 * (1 + mu) ** 2)
    sum_variance = variance * (CYCLES + 2 * np.sum((CYCLES - lags) * PHI**lags))
    truth = math.exp(CYCLES * mean_log + sum_variance / 2) - 1
    covered = 0
    for _ in range(SEASONS):
        interval = stats.return_interval(ar1(rng, mu), rng, reps=REPS)
        covered += interval.lower <= truth <= interval.upper
    assert 0.93 <= covered / SEASONS <= 0.97, covered / SEASONS


def _market_and_two_agents(rng: np.random.Generator, edge: float) -> tuple[np.ndarray, np.ndarray]:
    """Two agents on the same market (beta 0.5 each, the market's returns AR(1) with 0.3)
    with returns of their own, AR(1) with 0.1 (an agent's own returns come from positions
    on five-minute moves, nearly uncorrelated); the first earns ``edge`` more a cycle.
    With 0.3 for their own returns too, the test says "different" in 5.5 % of seasons."""
    market = ar1(rng, 0.0)
    return edge + 0.5 * market + ar1(rng, 0.0, OWN_PHI), 0.5 * market + ar1(rng, 0.0, OWN_PHI)


def test_two_agents_alike_are_found_different_in_at_most_5_percent_of_seasons() -> None:
    rng = np.random.default_rng(13)
    different = 0
    for _ in range(SEASONS):
        a, b = _market_and_two_agents(rng, 0.0)
        different += stats.compare(a, b, rng, reps=REPS).p_value < 0.05
    assert different / SEASONS <= 0.05, different / SEASONS


def test_an_agent_with_an_edge_is_found_in_at_least_80_percent_of_seasons() -> None:
    # The edge: 0.03 % a cycle, a tenth of the deviation of the two agents' difference
    # (0.2 % * sqrt(2) / sqrt(1 - 0.1^2), about 0.28 % a cycle).
    rng = np.random.default_rng(14)
    found = 0
    beats = []
    for _ in range(SEASONS // 2):
        a, b = _market_and_two_agents(rng, 0.0003)
        comparison = stats.compare(a, b, rng, reps=REPS)
        found += comparison.p_value < 0.05 and comparison.mean_difference > 0
        beats.append(comparison.p_a_beats_b)
    assert found / (SEASONS // 2) >= 0.80, found / (SEASONS // 2)
    assert np.median(beats) > 0.95


def test_a_season_of_a_few_cycles() -> None:
    # Too short for an estimate of the block length: the floor, the cube root of 5.
    r = np.array([0.01, -0.02, 0.015, 0.03, -0.01])
    assert stats.block_length(r) == pytest.approx(5 ** (1 / 3))
    # A gain of 5 % in three cycles compounds beyond a float over a year: no Calmar.
    assert stats.calmar(np.array([0.05, -0.01, 0.01]), PPY) is None
