"""``python -m devstack report DIR``: a season folder's statistics in ``DIR/report.json``."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from devstack.report import stats
from devstack.report.build import build
from devstack.report.runs import read_run, run_folders


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("season", type=Path, help="the season's --out folder")
    parser.add_argument(
        "--resamples",
        type=int,
        default=stats.DEFAULT_REPS,
        help="bootstrap resamples per interval and comparison",
    )
    parser.add_argument("--seed", type=int, default=0, help="the bootstrap's seed")
    parser.add_argument(
        "--cycles-per-year",
        type=int,
        default=stats.CYCLES_PER_YEAR_5M,
        help="to annualise Sharpe, Sortino, Calmar and alpha (five-minute cycles: 105120)",
    )


def main(args: argparse.Namespace) -> int:
    started = time.monotonic()
    folders = run_folders(args.season)
    if not folders:
        print(f"[report] no finished run in {args.season}", flush=True)
        return 1
    summary = args.season / "summary.json"
    season = json.loads(summary.read_text()).get("season") if summary.exists() else None
    runs = [read_run(number, folder) for number, folder in folders]
    report = build(
        runs,
        periods_per_year=args.cycles_per_year,
        reps=args.resamples,
        seed=args.seed,
        season=season,
    )
    out = args.season / "report.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(
        f"[report] {len(runs)} run(s), {report['cycles']} cycles, {len(report['agents'])} "
        f"agents: {out} in {time.monotonic() - started:.1f} s",
        flush=True,
    )
    return 0
