"""One run of a season: an arena of its own replays the data, then its results are kept.

The arena lives in a temporary folder (its NATS, Postgres and logs), on free ports, so runs
side by side, and a live ``make run`` beside them, never meet. What stays is
``<out>/run-<k>/``: the exported tables, ``llm_decisions.log`` and ``arena.log``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

from devstack.arena import Launch, launch, scheduler_status
from devstack.ports import free_port
from devstack.season.config import Season
from devstack.season.results import RunFigures, collect
from services.common.settings import PROJECT_ROOT

PROGRESS_EVERY_SECONDS = 5.0
POLL_SECONDS = 0.5


@dataclass(frozen=True)
class RunResult:
    run: int
    seed: int
    seconds: float
    figures: RunFigures | None = None
    verify: str = ""
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"run": self.run, "seed": self.seed}
        if self.figures is not None:
            out |= {
                "cycles": self.figures.cycles,
                "chain_head": self.figures.chain_head,
                "chain_length": self.figures.chain_length,
                "verify": self.verify,
                "agents": self.figures.agents,
            }
        if self.error is not None:
            out["error"] = self.error
        out["seconds"] = round(self.seconds, 1)
        return out


def play(season: Season, run: int, say: Callable[[str], None]) -> RunResult:
    """Run ``run`` of ``season`` from start to summary; failures are in the result."""
    began = time.monotonic()
    seed = season.seed_of(run)
    run_dir = season.run_dir(run)
    run_dir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix=f"arena-season-run{run}-"))
    port = free_port()
    settings = {**season.settings_of(run), "GATEWAY_PORT": str(port)}
    try:
        if season.database_server is not None:
            settings["DATABASE_URL"] = asyncio.run(
                fresh_database(season.database_server, season.database_of(run))
            )
        with launch(root, settings) as arena:
            say(f"run {run} (seed {seed}): started, gateway on http://127.0.0.1:{port}")
            _wait_until_played(arena, port, season.run_timeout, run, say)
            database_url = settings.get("DATABASE_URL") or (
                f"postgresql://postgres@/arena?host={arena.data_dir / 'postgres'}"
            )
            verify = _verify(database_url)
            figures = asyncio.run(collect(database_url, run_dir))
        result = RunResult(run, seed, time.monotonic() - began, figures, verify)
        say(
            f"run {run}: done, {figures.cycles} cycles in {result.seconds:.0f} s, "
            f"verify {verify}, chain head {figures.chain_head[:12]}"
        )
        return result
    except Exception as exc:  # one failed run must not lose the others
        say(f"run {run}: failed: {exc}")
        return RunResult(run, seed, time.monotonic() - began, error=str(exc))
    finally:
        if (root / "run.log").exists():
            shutil.copyfile(root / "run.log", run_dir / "arena.log")
        shutil.rmtree(root, ignore_errors=True)


async def fresh_database(server_url: str, name: str) -> str:
    """An empty database ``name`` on the server (dropped first if it exists); its URL."""
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))


def _wait_until_played(
    arena: Launch, port: int, timeout: float, run: int, say: Callable[[str], None]
) -> None:
    """Until the replay has no next cycle and none running, with a progress line."""
    deadline = time.monotonic() + timeout
    began = time.monotonic()
    next_report = began + PROGRESS_EVERY_SECONDS
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
        while time.monotonic() < deadline:
            arena.check_running()
            status = scheduler_status(http)
            if status is not None:
                done = status["cycles_completed"]
                played_out = status["running"] and not status["paused"]
                if played_out and status["current_cycle_id"] is None and not status["next_run_at"]:
                    if status["cycles_started"] == 0:
                        raise RuntimeError(
                            "the replay had no cycle to play: too little data for the "
                            "warm-up of 100 five-minute candles? (see arena.log)"
                        )
                    return
                now = time.monotonic()
                if now >= next_report:
                    rate = done / (now - began)
                    say(
                        f"run {run}: {done} cycles, data at {status['next_run_at']}, "
                        f"{rate:.1f} cycles/s, {status['cycles_failed']} failed"
                    )
                    next_report = now + PROGRESS_EVERY_SECONDS
            time.sleep(POLL_SECONDS)
    raise RuntimeError(f"the replay did not finish within {timeout:.0f} s")


def _verify(database_url: str) -> str:
    """``python -m services.ledger verify`` on the run's database: "ok" or what it found."""
    verify = subprocess.run(
        [sys.executable, "-m", "services.ledger", "verify"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        check=False,
    )
    lines = (verify.stdout or verify.stderr).strip().splitlines()
    return "ok" if verify.returncode == 0 else " | ".join(lines[-5:])
