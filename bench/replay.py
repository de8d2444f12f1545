"""Replay speed through the whole arena: cycles completed per second of wall time.

A month (default) of one-minute bars for the six symbols, in Binance's public-data layout,
is replayed through ``make run``'s launcher (every service a process, the shipped line-up:
three LLM agents without keys answer HOLD, four baselines trade) on its own embedded NATS
and Postgres; the replay's cycles per second are measured from the first cycle to the last,
then ``verify`` must pass. Target: >= 100 cycles/s (a month of 5-minute cycles, 8,640, in
under 90 s), aiming at 200.

Its reference, measured in the same run: the design's floor (bench/cycle_floor.py), as many
cycles of the same line-up's messages and writes with nothing done between them.

    python -m bench.replay [--days 30] [--lineup config/agents.toml] [--floor]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench import cycle_floor
from bench.cpu import postgres_seconds
from bench.cycle_timeline import CycleTimeline
from bench.measures import Better, Measure
from bench.replay_data import write_month
from devstack.arena import Launch, launch, scheduler_status
from devstack.ports import free_port
from services.common.settings import PROJECT_ROOT

TARGET_CYCLES_PER_SECOND = 100.0
GROUP = "replay"


def run(days: int = 30, lineup: Path | None = None, timeout: float = 1800) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="arena-bench-replay-"))
    try:
        data = root / "data"
        began = time.monotonic()
        write_month(data, days=days)
        generated = time.monotonic() - began
        port = free_port()
        settings = {"MARKET_SOURCE": f"replay:{data}", "GATEWAY_PORT": str(port)}
        if lineup is not None:
            settings["ARENA_AGENTS_FILE"] = str(lineup)
        with launch(root, settings) as arena:
            timeline = CycleTimeline(arena.tooling_url()).start()
            try:
                result, cpu_at_first = _measure(arena, port, timeout)
            finally:
                timeline.stop()
            cpu = cpu_seconds_by_process(arena.process.pid, arena.data_dir / "postgres")
            # From the first completed cycle on: start-up (imports, migrations) left out.
            spent = {name: cpu[name] - cpu_at_first.get(name, 0.0) for name in cpu}
            per_cycle = {
                name: round(1000 * seconds / max(result["cycles"], 1), 2)
                for name, seconds in sorted(spent.items(), key=lambda kv: -kv[1])
            }
            return {
                "days": days,
                "data_generation_seconds": round(generated, 1),
                **result,
                "cpu_ms_per_cycle": per_cycle,
                "cpu_ms_per_cycle_total": round(sum(per_cycle.values()), 1),
                "stage_ms": timeline.stages_ms(),
            }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def cpu_seconds_by_process(root_pid: int, postgres_dir: Path | None = None) -> dict[str, float]:
    """CPU seconds (user + system) each process under the launcher has used so far, and
    the embedded Postgres's (its server and backends, which run apart from the launcher).

    Named by the module a process runs (``services.ledger``, ``nats-server``, ...), agents
    by their id; on a loaded machine this is the figure that says where a cycle's cost
    goes, whatever the wall clock says.
    """
    found: dict[str, float] = {}
    for process in psutil.Process(root_pid).children(recursive=True):
        try:
            command = process.cmdline()
            times = process.cpu_times()
            agent = process.environ().get("AGENT_ID", "")
        except psutil.Error:
            continue
        name = _process_name(command, agent)
        found[name] = found.get(name, 0.0) + times.user + times.system
    if postgres_dir is not None:
        found["postgres"] = postgres_seconds(postgres_dir)
    return found


def _process_name(command: list[str], agent: str) -> str:
    if "-m" in command:
        module = command[command.index("-m") + 1]
        return f"{module}:{agent}" if agent else module
    return Path(command[0]).name if command else "?"


def _measure(arena: Launch, port: int, timeout: float) -> tuple[dict[str, Any], dict[str, float]]:
    deadline = time.monotonic() + timeout
    first_at: float | None = None
    cpu_at_first: dict[str, float] = {}
    first_count = 0
    last_change = time.monotonic()
    last_started = -1
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
        while time.monotonic() < deadline:
            arena.check_running()
            status = scheduler_status(http)
            now = time.monotonic()
            if status is not None:
                if first_at is None and status["cycles_completed"] >= 1:
                    first_at, first_count = now, status["cycles_completed"]
                    cpu_at_first = cpu_seconds_by_process(
                        arena.process.pid, arena.data_dir / "postgres"
                    )
                if status["cycles_started"] != last_started:
                    last_started, last_change = status["cycles_started"], now
                finished = (
                    first_at is not None
                    and status["current_cycle_id"] is None
                    and status["next_run_at"] is None
                )
                if finished:
                    break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"the replay did not finish within {timeout:.0f} s")
        assert first_at is not None and status is not None
        seconds = last_change - first_at
        cycles = status["cycles_completed"] - first_count
        failed = status["cycles_failed"]
    verify = subprocess.run(
        [sys.executable, "-m", "services.ledger", "verify"],
        cwd=PROJECT_ROOT,
        env={
            **os.environ,
            "DATABASE_URL": f"postgresql://postgres@/arena?host={arena.data_dir / 'postgres'}",
        },
        capture_output=True,
        text=True,
        check=False,
    )
    return {
        "cycles": cycles,
        "cycles_failed": failed,
        "seconds": round(seconds, 2),
        "cycles_per_second": round(cycles / seconds, 1) if seconds > 0 else None,
        "target_cycles_per_second": TARGET_CYCLES_PER_SECOND,
        "verify": verify.stdout.strip().splitlines()[-1:] if verify.stdout else verify.stderr,
    }, cpu_at_first


QUICK_DAYS = 1
FLOOR_NAME = "the design's floor (bench.cycle_floor)"


def measure(quick: bool = False) -> list[Measure]:
    """Replay cycles/s for a month (quick: a day) through every service, against the target;
    CPU per cycle and the slowest stages as figures without a target."""
    days = QUICK_DAYS if quick else 30
    result = run(days)
    if result["verify"] != ["ok"]:
        raise RuntimeError(f"verify after the replay: {result['verify']}")
    floor = cycle_floor.run(result["cycles"] + 1)
    found = [
        Measure(
            GROUP,
            f"replay cycles/s, {days}-day season",
            float(result["cycles_per_second"] or 0.0),
            "cycles/s",
            better=Better.HIGHER,
            target=TARGET_CYCLES_PER_SECOND,
            reference=round(floor.cycles_per_second, 1),
            reference_name=FLOOR_NAME,
        ),
        Measure(
            GROUP,
            "replay CPU per cycle, all processes",
            result["cpu_ms_per_cycle_total"],
            "ms",
            reference=floor.cpu_ms_per_cycle_total,
            reference_name=FLOOR_NAME,
        ),
    ]
    found += [
        Measure(GROUP, f"replay stage '{stage}' median", figures["median"], "ms")
        for stage, figures in result["stage_ms"].items()
    ]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.replay", description=__doc__)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--lineup", type=Path, default=None)
    parser.add_argument(
        "--floor", action="store_true", help="then the design's floor for as many cycles"
    )
    args = parser.parse_args()
    result = run(args.days, args.lineup)
    if args.floor:
        result["floor"] = cycle_floor.run(result["cycles"] + 1).as_dict()
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
