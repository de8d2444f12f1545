"""Resident memory of every service: the arena started once, as ``make run`` starts it.

``python -m bench.rss`` runs ``python -m devstack run`` (embedded NATS and Postgres, the
simulator market, the shipped line-up with no API keys: LLM agents answer HOLD, baselines
trade), waits for two completed cycles so each service has done its work once, reads
the RSS of every process and stops the arena. The reference, measured in the same run,
is a bare Python interpreter's RSS. The agent processes are what scales with the line-up:
100 agents must fit 6 GB with everything else (bench/agents.py measures that curve).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx
import psutil

from bench.measures import Measure
from bench.table import print_measures
from devstack.ports import free_port
from services.common.settings import PROJECT_ROOT

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


def _wait_for_cycles(port: int, count: int, launcher: subprocess.Popen[bytes], log: Path,
                     timeout: float) -> None:  # fmt: skip
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
        while time.monotonic() < deadline:
            if launcher.poll() is not None:
                raise RuntimeError(f"the arena stopped: {log.read_text(errors='replace')[-2000:]}")
            try:
                reply = http.get("/scheduler/status")
                if reply.status_code == 200 and reply.json()["cycles_completed"] >= count:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
    tail = log.read_text(errors="replace").splitlines()[-5:]
    raise RuntimeError(f"{count} cycles did not complete within {timeout:.0f} s: {tail}")


def observe(cycles: int = 2, timeout: float = 180) -> dict[str, list[float]]:
    root = Path(tempfile.mkdtemp(prefix="arena-bench-rss-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("NATS_URL", "DATABASE_URL", "ARENA_ADMIN_TOKEN", *KEYS)}  # fmt: skip
    env.update(
        MARKET_SOURCE="simulator",
        GATEWAY_PORT=str(port),
        ARENA_CYCLE_SECONDS="10",
        ARENA_DECISION_SECONDS="5",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    log = root / "run.log"
    try:
        with log.open("wb") as out:
            launcher = subprocess.Popen(
                [sys.executable, "-m", "devstack", "run", "--data-dir", str(root / "arena"),
                 "--free-ports"],
                cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            _wait_for_cycles(port, cycles, launcher, log, timeout)
            return _rss_by_service(launcher.pid)
        finally:
            launcher.send_signal(signal.SIGINT)
            try:
                launcher.wait(timeout=60)
            except subprocess.TimeoutExpired:
                launcher.kill()
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
