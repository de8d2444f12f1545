"""``python -m devstack report DIR``: a season folder's statistics in ``DIR/report.json``,
and the page that shows them, ``DIR/report.html``, with its charts in ``DIR/charts/``."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devstack.report import DEFAULT_REPS
from services.common.annual import CYCLES_PER_YEAR_5M

if TYPE_CHECKING:
    from devstack.report.runs import Run

MIN_CYCLES = 3  # two returns: a deviation, a regression
PRICES = "market_data.csv"
PAGE = "report.html"
CHARTS = "charts"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("season", type=Path, help="the season's --out folder")
    parser.add_argument(
        "--resamples",
        type=int,
        default=DEFAULT_REPS,
        help="bootstrap resamples per interval and comparison",
    )
    parser.add_argument("--seed", type=int, default=0, help="the bootstrap's seed")
    parser.add_argument(
        "--cycles-per-year",
        type=int,
        default=None,
        help="to annualise Sharpe, Sortino, Calmar and alpha (default: a year of the cycles' "
        f"own spacing in the data; five-minute cycles: {CYCLES_PER_YEAR_5M})",
    )


def write_report(
    season: Path,
    *,
    reps: int = DEFAULT_REPS,
    seed: int = 0,
    periods_per_year: int | None = None,
) -> Path | None:
    """``season/report.json`` from its finished runs, then ``report.html`` and the charts;
    None (and nothing written) if none."""
    # Here, not above: the statistics libraries load only when a report is made.
    from devstack.report.build import build
    from devstack.report.runs import read_run, run_folders

    started = time.monotonic()
    folders = run_folders(season)
    if not folders:
        print(f"[report] no finished run in {season}", flush=True)
        return None
    missing = [folder.name for _, folder in folders if not (folder / PRICES).exists()]
    if missing:
        # Seasons exported before the report existed have no prices per cycle.
        print(f"[report] no {PRICES} in {', '.join(missing)} of {season}", flush=True)
        return None
    summary = season / "summary.json"
    described = json.loads(summary.read_text()).get("season") if summary.exists() else None
    runs = [read_run(number, folder) for number, folder in folders]
    if min(len(run.cycles) for run in runs) < MIN_CYCLES:
        print(f"[report] fewer than {MIN_CYCLES} cycles in a run of {season}", flush=True)
        return None
    report = build(runs, periods_per_year=periods_per_year, reps=reps, seed=seed, season=described)
    out = season / "report.json"
    # allow_nan=False: a figure that is not a number fails here, not in a reader's parser.
    out.write_text(json.dumps(report, indent=1, allow_nan=False) + "\n")
    print(
        f"[report] {len(runs)} run(s), {report['cycles']} cycles, {len(report['agents'])} "
        f"agents: {out} in {time.monotonic() - started:.1f} s",
        flush=True,
    )
    started = time.monotonic()
    page, charts = write_pages(season, runs, report)
    print(
        f"[report] {page} and {len(charts)} chart(s) in {charts[0].parent} in "
        f"{time.monotonic() - started:.1f} s",
        flush=True,
    )
    return out


def write_pages(season: Path, runs: list[Run], report: dict[str, Any]) -> tuple[Path, list[Path]]:
    """``season/report.html`` and the charts it shows, ``season/charts/<name>.png``."""
    # Here, not above: matplotlib and jinja2 load only when a report is made.
    from devstack.report import charts, html
    from devstack.report.runs import common_cycles

    pictures = charts.render(runs, report)
    written = charts.write(pictures, season / CHARTS)
    cycles = common_cycles(runs)
    page = season / PAGE
    page.write_text(html.render(report, pictures, span=(cycles[0], cycles[-1])), encoding="utf-8")
    return page, written


def main(args: argparse.Namespace) -> int:
    written = write_report(
        args.season,
        reps=args.resamples,
        seed=args.seed,
        periods_per_year=args.cycles_per_year,
    )
    return 0 if written else 1
