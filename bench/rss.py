"""Resident memory of every service: the arena started once, as ``make run`` starts it.

``python -m bench.rss`` runs ``python -m devstack run`` (embedded NATS and Postgres, the
simulator market, the shipped line-up with no API keys: LLM agents answer HOLD, baselines
trade), waits for two completed cycles so each service has done its work once, reads
the RSS of every process and stops the arena. The reference, measured in the same run,
is a bare Python interpreter's RSS. The agent processes are what scales with the line-up:
100 agents must fit 6 GB with everything else (bench/agents.py measures that curve).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import psutil

from bench.measures import Measure
from bench.table import print_measures
from devstack.arena import launch, wait_for_cycles
from devstack.ports import free_port

MB = 1024 * 1024
SERVICES = ("market", "agent", "risk", "ledger", "gateway")
KEYS = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "DEEPSEEK_API_KEY")


def _bare_python_rss() -> float:
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                            stdin=subprocess.PIPE)  # fmt: skip
    try:
        time.sleep(0.5)  # an idle interpreter: nothing to wait for but its start
        return float(psutil.Process(proc.pid).memory_info().rss) / MB
    finally:
        proc.communicate(b"")


def _service_of(process: psutil.Process) -> str | None:
    try:
        command = process.cmdline()
    except psutil.Error:
        return None
    for n, part in enumerate(command[:-1]):
        if part == "-m" and command[n + 1].startswith("services."):
            name = command[n + 1].removeprefix("services.")
            return name if name in SERVICES else None
    return None


def _rss_by_service(launcher: int) -> dict[str, list[float]]:
    found: dict[str, list[float]] = defaultdict(list)
    for process in psutil.Process(launcher).children(recursive=True):
        name = _service_of(process)
        if name is not None:
            try:
                found[name].append(process.memory_info().rss / MB)
            except psutil.Error:
                continue
    return found


def observe(cycles: int = 2, timeout: float = 180) -> dict[str, list[float]]:
    root = Path(tempfile.mkdtemp(prefix="arena-bench-rss-"))
    port = free_port()
    settings = {
        "MARKET_SOURCE": "simulator",
        "GATEWAY_PORT": str(port),
        "ARENA_CYCLE_SECONDS": "10",
        "ARENA_DECISION_SECONDS": "5",
    }
    try:
        with launch(root, settings, drop=KEYS, stop_timeout=60) as arena:
            wait_for_cycles(port, cycles, arena, timeout)
            return _rss_by_service(arena.process.pid)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def measure(quick: bool = False) -> list[Measure]:
    bare = _bare_python_rss()
    found = observe(cycles=1 if quick else 2)
    missing = [name for name in SERVICES if name not in found]
    if missing:
        raise RuntimeError(f"no process found for {', '.join(missing)}")
    ref = "bare Python"
    measures = [
        Measure("rss", name, found[name][0], "MB", reference=bare, reference_name=ref)
        for name in SERVICES
        if name != "agent"
    ]
    agents = found["agent"]
    measures += [
        Measure("rss", f"agent process, largest of {len(agents)}", max(agents), "MB",
                reference=bare, reference_name=ref),
        Measure("rss", f"all services ({sum(map(len, found.values()))} processes)",
                sum(sum(v) for v in found.values()), "MB", reference=bare, reference_name=ref),
    ]  # fmt: skip
    return measures


def main() -> None:
    print_measures(measure())


if __name__ == "__main__":
    main()
