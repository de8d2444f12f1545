"""Runs one benchmark module in its own process and collects its figures.

The parent starts ``python -m bench.runner <module> [--quick] --out FILE``; the child
imports ``bench.<module>`` (only then, so a module that does not exist yet or has no
``measure()`` is reported as not available rather than breaking the run), calls
``measure(quick)`` and writes the outcome as JSON to FILE (a dotted name is imported as
it is). A crash, a timeout or an
exception in the child is a failed outcome; the other modules go on.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from bench.table import Outcome, Status, outcome_from_json, outcome_to_json

ROOT = Path(__file__).resolve().parents[1]


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def collect(module: str, quick: bool) -> Outcome:
    """In the child: import the module and measure."""
    started = time.perf_counter()
    name = module if "." in module else f"bench.{module}"
    try:
        loaded = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        return Outcome(module, Status.NOT_AVAILABLE, detail=f"no module {name}")
    measure = getattr(loaded, "measure", None)
    if not callable(measure):
        return Outcome(module, Status.NOT_AVAILABLE, detail=f"{name} has no measure()")
    measures = tuple(measure(quick=quick))
    return Outcome(module, Status.OK, measures, seconds=time.perf_counter() - started)


def run(module: str, quick: bool, timeout: float) -> Outcome:
    """In the parent: the module's outcome, whatever happens to its process."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        out = Path(tmp) / "outcome.json"
        args = [sys.executable, "-m", "bench.runner", module, "--out", str(out)]
        if quick:
            args.append("--quick")
        paths = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
        try:
            done = subprocess.run(
                args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
                check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return Outcome(module, Status.FAILED, detail=f"timed out after {timeout:.0f} s",
                           seconds=time.perf_counter() - started)  # fmt: skip
        elapsed = time.perf_counter() - started
        if out.exists():
            outcome = outcome_from_json(json.loads(out.read_text(encoding="utf-8")))
            return Outcome(
                outcome.module, outcome.status, outcome.measures, outcome.detail, elapsed
            )
        why = _last_line(done.stderr) or _last_line(done.stdout) or f"exit code {done.returncode}"
        tail = "\n".join(done.stderr.splitlines()[-20:])
        print(f"bench.{module} failed (exit code {done.returncode}):\n{tail}", file=sys.stderr)
        return Outcome(module, Status.FAILED, detail=why, seconds=elapsed)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.runner", description=__doc__)
    parser.add_argument("module")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    try:
        outcome = collect(args.module, args.quick)
    except BaseException as exc:  # a failed row in the table, with the reason
        traceback.print_exc()
        outcome = Outcome(args.module, Status.FAILED, detail=f"{type(exc).__name__}: {exc}")
    args.out.write_text(json.dumps(outcome_to_json(outcome)), encoding="utf-8")
    return 1 if outcome.status is Status.FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
