"""``python -m bench`` (``make bench``): every benchmark, one table against the targets.

Each benchmark module runs in its own process (bench/runner.py) and hands back its
figures; the table shows each next to its same-run reference, its target and its change
since the last saved run of the same kind, flagging a regression of more than 20 %. The run
is saved under bench/results/ with the machine's description unless ``--no-save``.

    python -m bench [--quick] [--only risk,ledger] [--no-save] [--timeout SECONDS]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench import results
from bench.runner import run
from bench.table import Status, compare, render, summary

MODULES = (
    "risk",
    "ledger",
    "market",
    "agent",
    "gateway",
    "gateway_memory",
    "rss",
    "reads",
    "agents",
    "replay",
)


def _modules(only: str | None) -> list[str]:
    if not only:
        return list(MODULES)
    chosen = [name.strip() for name in only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in MODULES]
    if unknown:
        raise SystemExit(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(MODULES)}")
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a check that it runs")
    parser.add_argument("--only", metavar="A,B", help=f"among {', '.join(MODULES)}")
    parser.add_argument(
        "--save", action=argparse.BooleanOptionalAction, default=True,
        help="save the run under bench/results/ (default: yes)",
    )  # fmt: skip
    parser.add_argument("--results", type=Path, default=results.RESULTS, help=argparse.SUPPRESS)
    parser.add_argument(
        "--timeout", type=float, default=None,
        help="seconds per module (default: 300 quick, 1800 full)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    timeout = args.timeout or (300.0 if args.quick else 1800.0)
    description = results.machine()
    outcomes = []
    for module in _modules(args.only):
        print(f"bench.{module} ...", end=" ", file=sys.stderr, flush=True)
        outcome = run(module, args.quick, timeout)
        print(f"{outcome.status.value} in {outcome.seconds:.1f} s", file=sys.stderr, flush=True)
        outcomes.append(outcome)
    earlier = results.earlier_runs(args.results, args.quick)
    changes = compare((m for o in outcomes for m in o.measures), results.previous_values(earlier))
    cpu, cores, memory = description["cpu"], description["cores"], description["memory_gb"]
    print(f"\n{'quick run' if args.quick else 'full run'} on {cpu}, {cores} cores, {memory} GB, "
          f"Python {description['python']}, load {description['load_average']}")  # fmt: skip
    print(f"compared with: {earlier[0].path.name if earlier else 'no earlier saved run'}")
    load = description["load_average"][0]
    if cores and load > cores:
        print(
            f"the machine was busy (load {load:.1f} on {cores} cores): the figures, and the "
            "regressions against a quieter run, say as much about it as about the code"
        )
    print()
    print(render(outcomes, changes))
    print(f"\n{summary(outcomes, changes)}")
    for outcome in outcomes:
        if outcome.status is Status.FAILED:
            print(f"bench.{outcome.module} failed: {outcome.detail}")
    if args.save:
        print(f"saved: {results.save(outcomes, args.quick, description, args.results)}")
    return 1 if any(o.status is Status.FAILED for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
