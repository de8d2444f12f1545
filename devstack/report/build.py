"""``report.json`` from a season's runs (docs/seasons.md#report has its shape).

Per run, each agent's figures come from its own per-cycle returns. Across runs (which
replay the same market and differ only in their seeds), the headline figures come from
the agent's per-cycle return averaged over the runs, cycle by cycle: their intervals
say how much the market's cycles, not the seeds, leave open; the runs' spread and rank
frequencies say how much the seeds do. Returns, drawdowns and alpha are in percent.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import combinations
from typing import Any

import numpy as np
import numpy.typing as npt

from devstack.report import DEFAULT_REPS, metrics
from devstack.report.activity import Activity
from devstack.report.runs import BENCHMARK, Run, common_cycles, cycle_seconds, on_cycles
from services.common import evidence as stats
from services.common.annual import CYCLES_PER_YEAR_5M, cycles_per_year

Series = npt.NDArray[np.float64]
BASELINE_PROVIDER = "baseline"


def _interval(interval: stats.Interval, scale: float = 1.0) -> dict[str, float]:
    return {
        "value": interval.value * scale,
        "lower": interval.lower * scale,
        "upper": interval.upper * scale,
    }


def _percent(value: float | None) -> float | None:
    return None if value is None else value * 100.0


def figures(
    r: Series, benchmark: Series, periods_per_year: int, rng: np.random.Generator, reps: int
) -> dict[str, Any]:
    """One series' figures: return, Sharpe and alpha with intervals, and the rest."""
    intervals = stats.agent_intervals(r, benchmark, periods_per_year, rng, reps)
    return {
        "cycles": len(r) + 1,
        "return_pct": _interval(intervals.return_, 100.0),
        "sharpe": _interval(intervals.sharpe),
        "alpha": _interval(intervals.alpha, 100.0),
        "beta": stats.alpha_beta(r, benchmark, periods_per_year)[1],
        "sortino": stats.sortino(r, periods_per_year),
        "max_drawdown_pct": stats.max_drawdown(r) * 100.0,
        "calmar": stats.calmar(r, periods_per_year),
    }


def _gross(run: Run, agent: str) -> Series:
    """The equity with the fees and funding paid added back."""
    return run.equity[agent] + run.paid.get(agent, 0.0)


def _net(run: Run, agent: str) -> Series:
    """The equity less the model calls' cost (nothing left below zero)."""
    return np.maximum(run.equity[agent] - run.llm_cost.get(agent, 0.0), 0.0)


def _variant(
    r: Series, same: bool, as_is: dict[str, float], rng: np.random.Generator, reps: int
) -> dict[str, float]:
    """A return variant's interval: the return's own when the variant is the same series."""
    return dict(as_is) if same else _interval(stats.return_interval(r, rng, reps), 100.0)


def _more(
    played: list[Run],
    agent: str,
    *,
    cycles: tuple[str, ...],
    return_pct: dict[str, float],
    periods_per_year: int,
    rng: np.random.Generator,
    reps: int,
) -> dict[str, Any]:
    """The return variants (per-cycle returns averaged over the runs ``played``, on
    ``cycles``) and the figures of the agent's rows (pooled over those runs)."""

    def averaged(equity: Callable[[Run, str], Series]) -> Series:
        series: Series = np.mean(
            [on_cycles(run, equity(run, agent), cycles) for run in played], axis=0
        )
        return series

    no_fees = not any(np.any(run.paid.get(agent, 0.0)) for run in played)
    no_bill = not any(np.any(run.llm_cost.get(agent, 0.0)) for run in played)
    activities = [run.activity.get(agent, Activity()) for run in played]
    return {
        "gross_return_pct": _variant(averaged(_gross), no_fees, return_pct, rng, reps),
        "net_return_pct": _variant(averaged(_net), no_bill, return_pct, rng, reps),
        "llm_cost_usd": float(np.mean([a.cost_usd for a in activities])),
        "trading": metrics.trading(
            activities,
            [run.equity[agent] for run in played],
            [run.exposed.get(agent, np.zeros(len(run.cycles), np.bool_)) for run in played],
            [_days(len(run.cycles), periods_per_year) for run in played],
        ),
        "calibration": metrics.calibration(activities),
        "reliability": metrics.reliability(activities),
        "llm": metrics.llm_usage(activities, return_pct["value"]),
    }


def _days(cycles: int, periods_per_year: int) -> float:
    """The time ``cycles`` cycles span, in days (the cycles per year state their length)."""
    return (cycles - 1) * 365.0 / periods_per_year


def _pairwise(
    pooled: dict[str, Series], providers: dict[str, str], rng: np.random.Generator, reps: int
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, dict[str, float]]]]:
    """The matrix of P(row beats column), and every agent tested against each baseline
    with Holm's correction across that baseline's comparisons."""
    agents = sorted(pooled)
    matrix: dict[str, dict[str, float]] = {a: {} for a in agents}
    compared: dict[tuple[str, str], stats.Comparison] = {}
    for a, b in combinations(agents, 2):
        comparison = stats.compare(pooled[a], pooled[b], rng, reps)
        compared[(a, b)] = comparison
        matrix[a][b] = comparison.p_a_beats_b
        matrix[b][a] = 1.0 - comparison.p_a_beats_b
    tests: dict[str, dict[str, dict[str, float]]] = {}
    for baseline in (a for a in agents if providers.get(a) == BASELINE_PROVIDER):
        others = [a for a in agents if a != baseline]
        found = [
            compared[(a, baseline)] if (a, baseline) in compared else compared[(baseline, a)]
            for a in others
        ]
        p_values = [c.p_value for c in found]
        tests[baseline] = {
            agent: {
                "mean_difference_pct": _signed(c, agent, baseline) * 100.0,
                "p_value": p,
                "p_holm": p_holm,
            }
            for agent, c, p, p_holm in zip(
                others, found, p_values, stats.holm(p_values), strict=True
            )
        }
    return matrix, tests


def _signed(comparison: stats.Comparison, agent: str, baseline: str) -> float:
    """The mean per-cycle difference agent minus baseline (pairs are compared in name
    order)."""
    return comparison.mean_difference if agent < baseline else -comparison.mean_difference


def build(
    runs: list[Run],
    *,
    periods_per_year: int | None = None,
    reps: int = DEFAULT_REPS,
    seed: int = 0,
    season: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The report of ``runs``; ``periods_per_year`` annualises (None: a year of the cycles'
    own spacing in the data, else five-minute cycles)."""
    given = periods_per_year is not None
    spacing = cycle_seconds(runs)
    periods_per_year = periods_per_year or (
        cycles_per_year(spacing) if spacing else CYCLES_PER_YEAR_5M
    )
    rng = np.random.default_rng(seed)
    agents = sorted(set().union(*(run.equity for run in runs)))
    per_run: dict[str, list[dict[str, Any]]] = {a: [] for a in agents}
    rank_counts = {a: [0] * len(agents) for a in agents}
    for run in runs:
        bench = run.benchmark_returns()
        points: dict[str, float] = {}
        for agent in sorted(run.equity):
            row = figures(run.returns(agent), bench, periods_per_year, rng, reps)
            row = {
                "run": run.number,
                **row,
                "trades": run.trades.get(agent, 0),
                **_more(
                    [run],
                    agent,
                    cycles=run.cycles,
                    return_pct=row["return_pct"],
                    periods_per_year=periods_per_year,
                    rng=rng,
                    reps=reps,
                ),
            }
            per_run[agent].append(row)
            points[agent] = row["return_pct"]["value"]
        for agent, rank in stats.ranks(points).items():
            per_run[agent][-1]["rank"] = rank
            rank_counts[agent][rank - 1] += 1

    cycles = common_cycles(runs)
    bench = on_cycles(runs[0], runs[0].benchmark, cycles)
    pooled = {
        a: np.mean(
            [on_cycles(run, run.equity[a], cycles) for run in runs if a in run.equity], axis=0
        )
        for a in agents
    }
    report_agents: dict[str, Any] = {}
    for agent in agents:
        rows = per_run[agent]
        headline = figures(pooled[agent], bench, periods_per_year, rng, reps)
        report_agents[agent] = {
            **headline,
            "trades": float(np.mean([row["trades"] for row in rows])),
            **_more(
                [run for run in runs if agent in run.equity],
                agent,
                cycles=cycles,
                return_pct=headline["return_pct"],
                periods_per_year=periods_per_year,
                rng=rng,
                reps=reps,
            ),
            "rank_frequencies": rank_counts[agent],
            "across_runs": {
                key: stats.spread([pick(row) for row in rows])
                for key, pick in (
                    ("return_pct", lambda row: row["return_pct"]["value"]),
                    ("sharpe", lambda row: row["sharpe"]["value"]),
                    ("alpha", lambda row: row["alpha"]["value"]),
                    ("max_drawdown_pct", lambda row: row["max_drawdown_pct"]),
                    ("trades", lambda row: float(row["trades"])),
                    ("gross_return_pct", lambda row: row["gross_return_pct"]["value"]),
                    ("net_return_pct", lambda row: row["net_return_pct"]["value"]),
                    ("llm_cost_usd", lambda row: row["llm_cost_usd"]),
                )
            },
            "runs": rows,
        }
    providers: dict[str, str] = {}
    for run in runs:
        providers.update(run.providers)
    matrix, tests = _pairwise(pooled, providers, rng, reps)
    benchmark = figures(bench, bench, periods_per_year, rng, reps)
    return {
        "season": season,
        "runs": len(runs),
        "cycles": len(cycles),
        "method": {
            "cycles_per_year": periods_per_year,
            "cycles_per_year_from": "given" if given else "the cycles' spacing",
            "level": stats.LEVEL,
            "bootstrap": "stationary",
            "resamples": reps,
            "seed": seed,
        },
        "benchmark": {
            "symbol": BENCHMARK,
            "return_pct": benchmark["return_pct"],
            "sharpe": benchmark["sharpe"],
            "max_drawdown_pct": benchmark["max_drawdown_pct"],
        },
        "agents": report_agents,
        "pairwise": matrix,
        "against_baselines": tests,
    }
