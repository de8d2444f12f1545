"""``python -m devstack season --data DIR --out DIR [...]``: the runs, then ``summary.json``
and the report (``report.json``, ``report.html``)."""

from __future__ import annotations

import argparse
import fcntl
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from datetime import date
from pathlib import Path
from typing import Any

from devstack.report.cli import write_report
from devstack.season.config import DEFAULT_RUN_TIMEOUT_SECONDS, Season
from devstack.season.run import RunResult, play
from services.common.lineup import load_lineup
from services.common.settings import PROJECT_ROOT

SUMMARY = "summary.json"
RESULT = "result.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="the replayed history")
    parser.add_argument("--out", type=Path, required=True, help="where results go")
    parser.add_argument("--from", dest="start", type=date.fromisoformat, default=None)
    parser.add_argument("--to", dest="end", type=date.fromisoformat, default=None)
    parser.add_argument(
        "--lineup", type=Path, default=PROJECT_ROOT / "config" / "agents.toml", help="agents"
    )
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=42, help="run k uses seed + k")
    parser.add_argument("--parallel", type=int, default=1, help="runs at a time")
    parser.add_argument(
        "--symbols", default="", help="comma-separated (default: the arena's ARENA_SYMBOLS)"
    )
    parser.add_argument(
        "--run-timeout", type=float, default=DEFAULT_RUN_TIMEOUT_SECONDS, help="seconds"
    )
    parser.add_argument(
        "--only-run", type=int, default=None, help="play only this run (a Job pod's index)"
    )
    parser.add_argument(
        "--database-server",
        default=None,
        help="a Postgres URL where each run gets its own database (default: embedded)",
    )


def season_of(args: argparse.Namespace) -> Season:
    if not args.data.is_dir():
        raise SystemExit(f"--data {args.data}: no such folder")
    given = {f.name: getattr(args, f.name) for f in fields(Season) if f.name != "symbols"}
    symbols = tuple(s.strip().upper() for s in args.symbols.split(",") if s.strip())
    return Season(**given, symbols=symbols)


def describe(season: Season) -> dict[str, Any]:
    lineup = load_lineup(season.lineup)
    return {
        "data": str(season.data),
        "from": season.start.isoformat() if season.start else None,
        "to": season.end.isoformat() if season.end else None,
        "symbols": list(season.symbols) or None,
        "lineup": [{"id": a.id, "provider": a.provider, "model": a.model} for a in lineup.active],
        "runs": season.runs,
        "seed": season.seed,
    }


def run_season(season: Season) -> list[RunResult]:
    """Every run, ``season.parallel`` at a time; ``summary.json`` written at the end."""
    season.out.mkdir(parents=True, exist_ok=True)
    described = describe(season)  # a bad line-up fails here, before any arena starts
    lock = threading.Lock()

    def say(line: str) -> None:
        with lock:
            print(f"[season] {line}", flush=True)

    say(
        f"{season.runs} run(s) of {season.data}, {season.parallel} at a time, "
        f"results in {season.out}"
    )
    with ThreadPoolExecutor(max_workers=season.parallel) as pool:
        results = list(pool.map(lambda k: play(season, k, say), season.run_numbers))
    for result in results:
        path = season.run_dir(result.run) / RESULT
        path.write_text(json.dumps(result.as_json(), indent=1) + "\n")
    path, runs = write_summary(season.out, described)
    failed = [r.run for r in results if r.error or r.verify != "ok"]
    say(
        f"summary of {runs} of {season.runs} runs: {path}"
        + (f"; runs that failed or did not verify: {failed}" if failed else "")
    )
    return results


def write_summary(out: Path, described: dict[str, Any]) -> tuple[Path, int]:
    """``summary.json`` from every ``run-<k>/result.json`` under ``out``: the runs played by
    this process and by any other (a Job's pods share the folder, each rewrites it as it
    finishes, one at a time, so the last one to finish leaves all of them)."""
    path = out / SUMMARY
    with (out / ".summary.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = [json.loads(p.read_text()) for p in out.glob(f"run-*/{RESULT}")]
        runs = sorted(found, key=lambda r: int(r["run"]))
        written = path.with_suffix(".json.part")
        written.write_text(json.dumps({"season": described, "runs": runs}, indent=1) + "\n")
        written.replace(path)
    return path, len(runs)


def main(args: argparse.Namespace) -> int:
    season = season_of(args)
    results = run_season(season)
    # A Job's pod plays one run: the report waits for all of them (python -m devstack report).
    if season.only_run is None:
        write_report(season.out)
    return 0 if all(r.error is None and r.verify == "ok" for r in results) else 1
