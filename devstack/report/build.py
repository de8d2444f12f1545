"""``report.json`` from a season's runs (docs/seasons.md#report has its shape).

Per run, each agent's figures come from its own per-cycle returns. Across runs (which
replay the same market and differ only in their seeds), the headline figures come from
the agent's per-cycle return averaged over the runs, cycle by cycle: their intervals
say how much the market's cycles, not the seeds, leave open; the runs' spread and rank
frequencies say how much the seeds do. Returns, drawdowns and alpha are in percent.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np
import numpy.typing as npt

from devstack.report import CYCLES_PER_YEAR_5M, DEFAULT_REPS
from devstack.report.runs import BENCHMARK, Run, per_cycle_returns
from services.common import evidence as stats

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


def _common(runs: list[Run]) -> tuple[str, ...]:
    shared = set(runs[0].cycles).intersection(*(run.cycles for run in runs[1:]))
    return tuple(c for c in runs[0].cycles if c in shared)


def _on(run: Run, series: Series, cycles: tuple[str, ...]) -> Series:
    position = {c: i for i, c in enumerate(run.cycles)}
    return per_cycle_returns(series[[position[c] for c in cycles]])


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
    periods_per_year: int = CYCLES_PER_YEAR_5M,
    reps: int = DEFAULT_REPS,
    seed: int = 0,
    season: dict[str, Any] | None = None,
) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    agents = sorted(set().union(*(run.equity for run in runs)))
    per_run: dict[str, list[dict[str, Any]]] = {a: [] for a in agents}
    rank_counts = {a: [0] * len(agents) for a in agents}
    for run in runs:
        bench = run.benchmark_returns()
        points: dict[str, float] = {}
        for agent in sorted(run.equity):
            row = figures(run.returns(agent), bench, periods_per_year, rng, reps)
            row = {"run": run.number, **row, "trades": run.trades.get(agent, 0)}
            per_run[agent].append(row)
            points[agent] = row["return_pct"]["value"]
        for agent, rank in stats.ranks(points).items():
            per_run[agent][-1]["rank"] = rank
            rank_counts[agent][rank - 1] += 1

    cycles = _common(runs)
    bench = _on(runs[0], runs[0].benchmark, cycles)
    pooled = {
        a: np.mean([_on(run, run.equity[a], cycles) for run in runs if a in run.equity], axis=0)
        for a in agents
    }
    report_agents: dict[str, Any] = {}
    for agent in agents:
        rows = per_run[agent]
        report_agents[agent] = {
            **figures(pooled[agent], bench, periods_per_year, rng, reps),
            "trades": float(np.mean([row["trades"] for row in rows])),
            "rank_frequencies": rank_counts[agent],
            "across_runs": {
                key: stats.spread([pick(row) for row in rows])
                for key, pick in (
                    ("return_pct", lambda row: row["return_pct"]["value"]),
                    ("sharpe", lambda row: row["sharpe"]["value"]),
                    ("alpha", lambda row: row["alpha"]["value"]),
                    ("max_drawdown_pct", lambda row: row["max_drawdown_pct"]),
                    ("trades", lambda row: float(row["trades"])),
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
