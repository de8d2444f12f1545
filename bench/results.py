"""Saved runs of ``make bench``: ``bench/results/<UTC timestamp>.json``, with the machine.

A run file holds the machine's description (CPU model, cores, RAM, Python, platform, git
commit, load average when it started), whether it was a ``--quick`` run, and every
module's outcome with its figures. The comparison takes, for each figure, its value in the
most recent earlier run of the same kind (quick or full) that has it.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.table import Key, Outcome, key, outcome_from_json, outcome_to_json

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_bytes() -> int | None:
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except ImportError:
        return None


def _git(*args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    memory = _memory_bytes()
    commit = _git("rev-parse", "HEAD")
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": None if memory is None else round(memory / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": commit,
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


@dataclass(frozen=True)
class Run:
    path: Path
    started: str
    quick: bool
    machine: dict[str, Any]
    outcomes: tuple[Outcome, ...]


def save(
    outcomes: Sequence[Outcome],
    quick: bool,
    description: dict[str, Any],
    directory: Path = RESULTS,
    now: datetime | None = None,
) -> Path:
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{moment.strftime('%Y%m%dT%H%M%SZ')}.json"
    document = {
        "started": moment.isoformat(),
        "quick": quick,
        "machine": description,
        "outcomes": [outcome_to_json(o) for o in outcomes],
    }
    path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def load(path: Path) -> Run:
    data = json.loads(path.read_text(encoding="utf-8"))
    return Run(
        path=path,
        started=str(data.get("started", "")),
        quick=bool(data.get("quick", False)),
        machine=dict(data.get("machine", {})),
        outcomes=tuple(outcome_from_json(o) for o in data.get("outcomes", ())),
    )


def earlier_runs(directory: Path = RESULTS, quick: bool = False) -> list[Run]:
    """Saved runs of the same kind, the most recent first (unreadable files are skipped)."""
    runs = []
    for path in sorted(directory.glob("*.json"), reverse=True):
        try:
            run = load(path)
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if run.quick == quick:
            runs.append(run)
    return runs


def previous_values(runs: Sequence[Run]) -> dict[Key, float]:
    """Each figure's value in the most recent of ``runs`` that measured it."""
    found: dict[Key, float] = {}
    for run in runs:
        for outcome in run.outcomes:
            for measure in outcome.measures:
                found.setdefault(key(measure), measure.value)
    return found
