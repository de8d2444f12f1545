"""``make run``'s launcher: embedded servers, every service, Ctrl-C stops all, data is kept."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
import pytest

from devstack.ports import free_port
from devstack.postgres import EmbeddedPostgres
from services.common.lineup import load_lineup
from services.common.settings import PROJECT_ROOT, Settings
from tests.support import eventually

pytestmark = pytest.mark.e2e


def _launcher_env(gateway_port: int) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("NATS_URL", "DATABASE_URL", "ARENA_ADMIN_TOKEN")
    }
    env.update(
        {
            "ARENA_CYCLE_SECONDS": "2",
            "ARENA_DECISION_SECONDS": "1.5",
            "GATEWAY_PORT": str(gateway_port),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def _processes_of(data_dir: Path, launcher: psutil.Process) -> set[psutil.Process]:
    """The launcher's descendants, plus the daemonised servers running on ``data_dir``."""
    found = set(launcher.children(recursive=True))
    for proc in psutil.process_iter(["cmdline"]):
        if any(str(data_dir) in part for part in proc.info["cmdline"] or ()):
            found.add(proc)
    found.discard(launcher)
    return found


async def _run_until_cycles(data_dir: Path, log: Path, cycles: int) -> tuple[dict[str, Any], int]:
    port = free_port()
    with log.open("ab") as out:
        launcher = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "devstack", "run", "--data-dir", str(data_dir),
            cwd=PROJECT_ROOT,
            env=_launcher_env(port),
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
    parent = psutil.Process(launcher.pid)
    started: set[psutil.Process] = set()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:

            async def enough() -> dict[str, Any] | None:
                if launcher.returncode is not None:
                    raise AssertionError(log.read_text()[-3000:])
                status = (await http.get("/scheduler/status")).json()
                return status if status["cycles_completed"] >= cycles else None

            await eventually(enough, timeout=120, what=f"{cycles} cycles via make run")
            accounts = (await http.get("/trading/accounts")).json()
        started = _processes_of(data_dir, parent)
        assert len(started) >= 9, [p.info for p in started]  # supervisord, 7 services, servers
    finally:
        launcher.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(launcher.wait(), timeout=60)
    _, alive = psutil.wait_procs(started, timeout=20)
    assert alive == [], f"still running after Ctrl-C: {[p.pid for p in alive]}"
    return accounts, code


async def test_run_starts_everything_stops_everything_and_keeps_the_race(tmp_path: Path) -> None:
    data_dir = tmp_path / "arena-data"
    log = tmp_path / "run.log"
    first, code = await _run_until_cycles(data_dir, log, cycles=2)
    assert code == 0, log.read_text()[-3000:]
    assert len(first["accounts"]) == len(load_lineup(Settings(_env_file=None).agents_file).agents)
    assert "admin token (shown once" in log.read_text()

    log.write_text("")
    second, code = await _run_until_cycles(data_dir, log, cycles=1)
    assert code == 0, log.read_text()[-3000:]
    assert "admin token (shown once" not in log.read_text()
    assert {a["agent_id"] for a in second["accounts"]} == {a["agent_id"] for a in first["accounts"]}

    # Both runs' cycles are in the one database: the race continued.
    postgres = EmbeddedPostgres(data_dir / "postgres", keep=True)
    postgres.start()
    try:
        conn = await asyncpg.connect(postgres.url("arena"))
        try:
            completed = await conn.fetchval(
                "SELECT count(*) FROM cycles WHERE status = 'completed'"
            )
        finally:
            await conn.close()
    finally:
        postgres.stop()
    assert completed >= 3
