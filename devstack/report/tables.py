"""The report's tables, from ``report.json``'s content: text cells (devstack.report.text)
for the page to lay out. Figures the page does not know (added to the report later) get
a column or a table of their own; a table whose figures are absent is None or empty."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from devstack.report.text import DASH, figure, is_interval, number, p_value, unit

# Columns of the agents' table, in this order, when the report has them; any other
# figure of an agent (a number or an interval) gets a column after these.
LABELS = {
    "return_pct": "Return",
    "net_return_pct": "Return net of LLM cost",
    "gross_return_pct": "Return before fees and funding",
    "sharpe": "Sharpe",
    "alpha": "Alpha (a year)",
    "beta": "Beta",
    "sortino": "Sortino",
    "max_drawdown_pct": "Max drawdown",
    "calmar": "Calmar",
    "trades": "Trades",
    "win_rate": "Win rate",
    "profit_factor": "Profit factor",
    "exposure": "Exposure",
    "turnover": "Turnover",
    "llm_cost_usd": "LLM cost",
}
NOT_COLUMNS = {"cycles", "rank_frequencies", "across_runs", "runs"}
SECTIONS = {
    "trading": "Trading",
    "calibration": "Calibration",
    "reliability": "Reliability",
    "llm": "LLM usage",
}
SIGNIFICANT = 0.05


@dataclass(frozen=True)
class Table:
    """Text cells, escaped by the template."""

    header: list[str]
    rows: list[list[str]]
    title: str = ""
    note: str = ""
    marked: set[int] = field(default_factory=set)  # rows shown as significant


def _scalar(value: object) -> bool:
    return value is None or isinstance(value, int | float | str | bool)


def _label(key: str) -> str:
    return LABELS.get(key, key.replace("_", " "))


def ordered_agents(report: Mapping[str, Any]) -> list[str]:
    agents: Mapping[str, Any] = report.get("agents") or {}

    def headline(agent: str) -> float:
        value = agents[agent].get("return_pct", {}).get("value")
        return -value if isinstance(value, int | float) else math.inf

    return sorted(agents, key=lambda a: (headline(a), a))


def _union(keys: Iterable[Iterable[str]]) -> list[str]:
    seen: dict[str, None] = {}
    for some in keys:
        seen.update(dict.fromkeys(some))
    return list(seen)


def agents_table(report: Mapping[str, Any], order: Sequence[str]) -> Table:
    agents = report["agents"]
    found = _union(
        (k for k, v in agents[a].items() if k not in NOT_COLUMNS and (_scalar(v) or is_interval(v)))
        for a in order
    )
    columns = [k for k in LABELS if k in found] + [k for k in found if k not in LABELS]
    rows = [[a, *(figure(k, agents[a].get(k)) for k in columns)] for a in order]
    benchmark = report.get("benchmark")
    if isinstance(benchmark, Mapping):
        name = f"{benchmark.get('symbol', 'benchmark')} held (benchmark)"
        rows.append([name, *(figure(k, benchmark[k]) if k in benchmark else "" for k in columns)])
    return Table(
        header=["Agent", *(_label(k) for k in columns)],
        rows=rows,
        note=f"Intervals are {_level(report)} % intervals: value [lower, upper].",
    )


def _level(report: Mapping[str, Any]) -> str:
    level = (report.get("method") or {}).get("level")
    return number(level * 100.0, 0) if isinstance(level, int | float) else DASH


def _flat(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A section's figures, one level of nesting as ``outer inner``; lists are left out."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if _scalar(value) or is_interval(value):
            flat[f"{prefix}{key}"] = value
        elif isinstance(value, Mapping) and not prefix:
            flat.update(_flat(value, f"{key} "))
    return flat


def section_tables(report: Mapping[str, Any], order: Sequence[str]) -> list[Table]:
    """A table per figure that is a group of figures (calibration, reliability, LLM
    usage...), its columns those any agent has."""
    agents = report["agents"]
    names = _union(
        (
            k
            for k, v in agents[a].items()
            if k not in NOT_COLUMNS and isinstance(v, Mapping) and not is_interval(v)
        )
        for a in order
    )
    tables = []
    for name in names:
        groups = {a: agents[a][name] for a in order if isinstance(agents[a].get(name), Mapping)}
        title = SECTIONS.get(name, _label(name).capitalize())
        flat = {a: _flat(group) for a, group in groups.items()}
        columns = _union(flat.values())
        if columns:
            tables.append(
                Table(
                    title=title,
                    header=["Agent", *(c.replace("_", " ") for c in columns)],
                    rows=[
                        [a, *(figure(c, row.get(c)) for c in columns)] for a, row in flat.items()
                    ],
                )
            )
        tables.extend(_list_tables(title, groups))
    return tables


def _list_tables(title: str, groups: Mapping[str, Mapping[str, Any]]) -> list[Table]:
    """A table per list of rows in a group of figures (calibration's bins...): a row per
    agent and item."""
    tables = []
    lists = _union(
        (k for k, v in group.items() if isinstance(v, list)) for group in groups.values()
    )
    for key in lists:
        items = [
            (agent, item)
            for agent, group in groups.items()
            for item in group.get(key) or []
            if isinstance(item, Mapping)
        ]
        columns = _union(
            (k for k, v in item.items() if _scalar(v) or is_interval(v)) for _, item in items
        )
        if not columns:
            continue
        tables.append(
            Table(
                title=f"{title}: {key.replace('_', ' ')}",
                header=["Agent", *(c.replace("_", " ") for c in columns)],
                rows=[[agent, *(figure(c, item.get(c)) for c in columns)] for agent, item in items],
            )
        )
    return tables


def pairwise_table(report: Mapping[str, Any], order: Sequence[str]) -> Table | None:
    matrix = report.get("pairwise")
    if not matrix:
        return None
    rows = [
        [a, *(DASH if a == b else number(matrix.get(a, {}).get(b)) for b in order)] for a in order
    ]
    return Table(
        header=["A \\ B", *order],
        rows=rows,
        note="The share of bootstrap resamples in which A's mean per-cycle return is the "
        "higher (row A, column B).",
    )


def baseline_tables(report: Mapping[str, Any]) -> list[Table]:
    tables = []
    for baseline, tests in sorted((report.get("against_baselines") or {}).items()):
        ordered = sorted(tests.items(), key=lambda item: (item[1].get("p_holm", 1.0), item[0]))
        tables.append(
            Table(
                title=f"Against {baseline}",
                header=["Agent", "Mean difference a cycle", "p-value", "p-value (Holm)"],
                rows=[
                    [
                        agent,
                        figure("mean_difference_pct", test.get("mean_difference_pct")),
                        p_value(test.get("p_value")),
                        p_value(test.get("p_holm")),
                    ]
                    for agent, test in ordered
                ],
                marked={
                    i
                    for i, (_, test) in enumerate(ordered)
                    if isinstance(test.get("p_holm"), int | float) and test["p_holm"] < SIGNIFICANT
                },
            )
        )
    return tables


def across_runs_table(report: Mapping[str, Any], order: Sequence[str]) -> Table | None:
    agents = report["agents"]
    spreads = {a: agents[a].get("across_runs") or {} for a in order}
    keys = _union(spreads.values())
    if not keys:
        return None

    def cell(key: str, spread: Mapping[str, Any] | None) -> str:
        if not isinstance(spread, Mapping):
            return DASH
        suffix = unit(key)
        digits = 1 if suffix == " %" else 2
        mean, std = number(spread.get("mean"), digits), number(spread.get("std"), digits)
        low, high = number(spread.get("min"), digits), number(spread.get("max"), digits)
        return f"{mean} ± {std}{suffix} [{low}, {high}]"

    return Table(
        header=["Agent", *(_label(k) for k in keys)],
        rows=[[a, *(cell(k, spreads[a].get(k)) for k in keys)] for a in order],
        note="Over the runs: mean ± sample deviation [lowest, highest run].",
    )


def runs_table(report: Mapping[str, Any], order: Sequence[str]) -> Table | None:
    agents = report["agents"]
    numbers = sorted({row["run"] for a in order for row in agents[a].get("runs") or []})
    if not numbers:
        return None

    def cell(agent: str, run: int) -> str:
        for row in agents[agent].get("runs") or []:
            if row["run"] == run:
                text = figure("return_pct", row.get("return_pct", {}).get("value"))
                return f"{text} ({number(row['rank'])})" if "rank" in row else text
        return DASH

    return Table(
        header=["Agent", *(f"run {n}" for n in numbers)],
        rows=[[a, *(cell(a, n) for n in numbers)] for a in order],
        note="Each run's return, its rank in that run in brackets.",
    )


def season_rows(report: Mapping[str, Any], span: tuple[str, str] | None) -> list[tuple[str, str]]:
    season: Mapping[str, Any] = report.get("season") or {}
    rows = []
    if season.get("data"):
        rows.append(("History", str(season["data"])))
    if season.get("from") or season.get("to"):
        rows.append(("From, to", f"{season.get('from') or DASH} to {season.get('to') or DASH}"))
    if span is not None:
        rows.append(("First and last cycle", f"{span[0]} to {span[1]}"))
    if season.get("symbols"):
        rows.append(("Symbols", ", ".join(str(s) for s in season["symbols"])))
    planned = season.get("runs")
    runs = number(report.get("runs"))
    rows.append(("Runs", f"{runs} of {number(planned)}" if planned is not None else runs))
    rows.append(("Cycles", number(report.get("cycles"))))
    if season.get("seed") is not None:
        rows.append(("Season seed", number(season["seed"])))
    method: Mapping[str, Any] = report.get("method") or {}
    if method:
        rows.append(
            (
                "Method",
                f"{_level(report)} % intervals, "
                f"{method.get('bootstrap', DASH)} block bootstrap, "
                f"{number(method.get('resamples'))} resamples, seed {number(method.get('seed'))}; "
                f"{number(method.get('cycles_per_year'))} cycles a year",
            )
        )
    return rows


def lineup_table(report: Mapping[str, Any]) -> Table | None:
    lineup = (report.get("season") or {}).get("lineup")
    if not lineup:
        return None
    return Table(
        header=["Agent", "Provider", "Model"],
        rows=[
            [str(e.get("id", DASH)), str(e.get("provider") or DASH), str(e.get("model") or DASH)]
            for e in lineup
        ],
    )
