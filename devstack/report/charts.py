"""The season report's charts, as PNG images (matplotlib, no display needed).

- ``equity``: each agent's return since the start, cycle by cycle, on its per-cycle
  return averaged over the runs (the path the headline figures come from), with the
  runs' range (lowest to highest run, cycle by cycle) as a band when there are several,
  and BTC held as the benchmark;
- ``pairwise``: the matrix of P(row beats column), the numbers in the cells;
- ``ranks``: how often each agent ranked 1st, 2nd, ... by return over the runs;
- ``returns``: each agent's return with its 95 % interval, BTC held marked;
- ``reliability``: stated confidence against the observed win frequency, by bin, for the
  agents whose report has ``calibration.bins`` (no chart without any).

The same runs and report give the same bytes: fixed sizes, fonts and colours, and no
software name or date in the PNG's metadata.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from devstack.report.runs import Run, common_cycles, on_cycles

Series = npt.NDArray[np.float64]

WIDTH_IN = 9.0
DPI = 100
BENCHMARK_LABEL = "BTC held"
# Names a reliability bin's figures may go by: its mean stated confidence, the share of
# its decisions that won, and how many there were.
CONFIDENCE_KEYS = ("mean_confidence", "confidence")
OBSERVED_KEYS = ("observed", "win_frequency", "observed_frequency", "win_rate", "frequency")
COUNT_KEYS = ("count", "decisions", "n")


def render(runs: Sequence[Run], report: Mapping[str, Any]) -> dict[str, bytes]:
    """Every chart the report has data for, by name, as PNG bytes."""
    agents = sorted(report["agents"])
    # One colour per agent, the same in every chart.
    palette = colormaps["tab10" if len(agents) <= 10 else "tab20"]
    colours = {agent: palette(i % palette.N) for i, agent in enumerate(agents)}
    figures = report["agents"].values()
    charts = {"equity": equity(runs, agents, colours)}
    if all(isinstance(f.get("return_pct"), Mapping) for f in figures):
        charts["returns"] = returns(report, colours)
    if report.get("pairwise"):
        charts["pairwise"] = pairwise(report)
    if all(f.get("rank_frequencies") for f in figures):
        charts["ranks"] = ranks(report)
    calibrated = reliability(report, colours)
    if calibrated is not None:
        charts["reliability"] = calibrated
    return charts


def write(charts: Mapping[str, bytes], folder: Path) -> list[Path]:
    """``folder/<name>.png`` for each chart; a chart of an earlier report that this one
    does not have is removed."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.png"):
        if stale.stem not in charts:
            stale.unlink()
    written = []
    for name, png in charts.items():
        path = folder / f"{name}.png"
        path.write_bytes(png)
        written.append(path)
    return written


def _figure(height_in: float, width_in: float = WIDTH_IN) -> Figure:
    """A figure of its own (no pyplot: no global state, no display), drawn by Agg."""
    return Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")


def _png(figure: Figure) -> bytes:
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=DPI, metadata={"Software": None})
    return out.getvalue()


def _growth_pct(r: Series) -> Series:
    """Return since the start, in percent, at every cycle (0 at the first)."""
    return (np.concatenate(([1.0], np.cumprod(1.0 + r))) - 1.0) * 100.0


def equity(runs: Sequence[Run], agents: Sequence[str], colours: Mapping[str, Any]) -> bytes:
    cycles = common_cycles(list(runs))
    figure = _figure(4.8)
    axes = figure.subplots()
    steps = np.arange(len(cycles))
    band = 0.18 if len(agents) <= 4 else 0.08  # the lines stay readable through many bands
    for agent in agents:
        per_run = [on_cycles(run, run.equity[agent], cycles) for run in runs if agent in run.equity]
        paths = np.array([_growth_pct(r) for r in per_run])
        if len(per_run) > 1:
            axes.fill_between(
                steps, paths.min(axis=0), paths.max(axis=0), color=colours[agent], alpha=band
            )
        axes.plot(
            steps, _growth_pct(np.mean(per_run, axis=0)), color=colours[agent], label=agent, lw=1.4
        )
    benchmark = _growth_pct(on_cycles(runs[0], runs[0].benchmark, cycles))
    axes.plot(steps, benchmark, color="black", ls="--", lw=1.1, label=BENCHMARK_LABEL)
    axes.axhline(0.0, color="grey", lw=0.6)
    axes.set_xlabel("cycle")
    axes.set_ylabel("return since the start (%)")
    axes.set_xlim(0, max(len(cycles) - 1, 1))
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", fontsize="small", ncols=2)
    return _png(figure)


def returns(report: Mapping[str, Any], colours: Mapping[str, Any]) -> bytes:
    ordered = _by_return(report, list(report["agents"]))[::-1]  # the highest on top
    figure = _figure(max(2.2, 0.45 * len(ordered) + 1.2))
    axes = figure.subplots()
    for row, agent in enumerate(ordered):
        interval = report["agents"][agent]["return_pct"]
        value = interval["value"]
        axes.errorbar(
            value,
            row,
            xerr=[[value - interval["lower"]], [interval["upper"] - value]],
            fmt="o",
            color=colours[agent],
            capsize=4,
        )
    benchmark = (report.get("benchmark") or {}).get("return_pct")
    if isinstance(benchmark, Mapping):
        axes.axvline(benchmark["value"], color="black", ls="--", lw=1.1, label=BENCHMARK_LABEL)
        axes.legend(loc="lower right", fontsize="small")
    axes.axvline(0.0, color="grey", lw=0.6)
    axes.set_yticks(range(len(ordered)), ordered)
    axes.set_ylim(-0.7, len(ordered) - 0.3)
    axes.set_xlabel("return over the season (%), 95 % interval")
    axes.grid(axis="x", alpha=0.3)
    return _png(figure)


def _by_return(report: Mapping[str, Any], agents: Sequence[str]) -> list[str]:
    """Highest return first (as the page's tables), then by name."""

    def headline(agent: str) -> float:
        interval = report["agents"].get(agent, {}).get("return_pct")
        return -interval["value"] if isinstance(interval, Mapping) else math.inf

    return sorted(agents, key=lambda a: (headline(a), a))


def pairwise(report: Mapping[str, Any]) -> bytes:
    agents = _by_return(report, list(report["pairwise"]))
    n = len(agents)
    matrix = np.full((n, n), np.nan)
    for i, a in enumerate(agents):
        for j, b in enumerate(agents):
            if b in report["pairwise"][a]:
                matrix[i, j] = report["pairwise"][a][b]
    size = max(3.0, 0.75 * n + 2.0)
    figure = _figure(size, size + 1.8)
    axes = figure.subplots()
    image = axes.imshow(np.ma.masked_invalid(matrix), cmap="RdBu", vmin=0.0, vmax=1.0)
    for i in range(n):
        for j in range(n):
            p = matrix[i, j]
            text = "" if np.isnan(p) else f"{p:.2f}"
            dark = not np.isnan(p) and abs(p - 0.5) > 0.3
            axes.text(j, i, text, ha="center", va="center", color="white" if dark else "black")
    axes.set_xticks(range(n), agents, rotation=30, ha="right")
    axes.set_yticks(range(n), agents)
    axes.set_xlabel("B")
    axes.set_ylabel("A")
    figure.colorbar(image, ax=axes, label="P(A beats B)", shrink=0.8)
    return _png(figure)


def _mean_rank(frequencies: Sequence[int]) -> float:
    return sum(place * n for place, n in enumerate(frequencies, 1)) / max(sum(frequencies), 1)


def ranks(report: Mapping[str, Any]) -> bytes:
    """Best mean rank on top."""
    agents = sorted(
        report["agents"], key=lambda a: (_mean_rank(report["agents"][a]["rank_frequencies"]), a)
    )
    counts = np.array([report["agents"][a]["rank_frequencies"] for a in agents], dtype=float)
    places = counts.shape[1]
    shades = colormaps["viridis"](np.linspace(0.0, 0.9, max(places, 1)))
    figure = _figure(max(2.2, 0.45 * len(agents) + 1.4))
    axes = figure.subplots()
    left = np.zeros(len(agents))
    rows = np.arange(len(agents))
    for place in range(places):
        axes.barh(rows, counts[:, place], left=left, color=shades[place], label=_ordinal(place + 1))
        left += counts[:, place]
    axes.set_yticks(rows, agents)
    axes.invert_yaxis()
    axes.set_xlabel("runs")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", title="rank")
    return _png(figure)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _first(row: Mapping[str, Any], keys: Sequence[str]) -> float | None:
    for key in keys:
        value = row.get(key)
        if isinstance(value, int | float):
            return float(value)
    return None


def reliability_points(bins: Sequence[Mapping[str, Any]]) -> list[tuple[float, float, float]]:
    """(mean confidence, observed frequency, count) of each bin with a figure for both."""
    points = []
    for row in bins:
        confidence, observed = _first(row, CONFIDENCE_KEYS), _first(row, OBSERVED_KEYS)
        count = _first(row, COUNT_KEYS)
        if confidence is None or observed is None or count == 0:
            continue
        points.append((confidence, observed, 1.0 if count is None else count))
    return points


def reliability(report: Mapping[str, Any], colours: Mapping[str, Any]) -> bytes | None:
    drawn = {}
    for agent, figures in sorted(report["agents"].items()):
        calibration = figures.get("calibration")
        bins = calibration.get("bins") if isinstance(calibration, Mapping) else None
        points = reliability_points(bins) if isinstance(bins, list) else []
        if points:
            drawn[agent] = points
    if not drawn:
        return None
    figure = _figure(WIDTH_IN * 0.6, WIDTH_IN * 0.7)
    axes = figure.subplots()
    axes.plot([0, 1], [0, 1], color="grey", ls="--", lw=0.8, label="perfectly calibrated")
    largest = max(count for points in drawn.values() for _, _, count in points)
    for agent, points in drawn.items():
        x, y, count = (np.array(column) for column in zip(*points, strict=True))
        axes.plot(x, y, color=colours[agent], lw=1.0)
        axes.scatter(x, y, s=20 + 180 * count / largest, color=colours[agent], label=agent)
    axes.set_xlim(-0.03, 1.03)  # a bin at 0 or 1 drawn whole
    axes.set_ylim(-0.03, 1.03)
    axes.set_aspect("equal")
    axes.set_xlabel("stated confidence (bin mean)")
    axes.set_ylabel("observed win frequency")
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", fontsize="small")
    return _png(figure)
