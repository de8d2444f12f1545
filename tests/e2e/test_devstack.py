"""``make run``'s launcher: supervised processes, locked-down NATS, data kept across runs.

One arena started as a user would (``python -m devstack run``): it completes cycles; a
process without credentials can do nothing, the read-only user cannot act, a verdict
forged with risk's credentials is refused by the ledger with a recorded reason; an agent
and risk SIGKILLed come back while cycles go on; Ctrl-C stops everything; a second run
continues the same race.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import nats
import psutil
import pytest
from nats.aio.client import Client as NatsClient

from devstack.ports import free_port
from services.common import channels, subjects
from services.common.contracts import (
    Action,
    ActionResult,
    Decision,
    SchedulerCommand,
    TradeAction,
    Verdict,
)
from services.common.settings import PROJECT_ROOT
from tests.support import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

LINEUP = Path(__file__).with_name("devstack_lineup.toml")


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Outside pytest's tree: the embedded Postgres runs as its own system user and needs
    # every parent directory to stay traversable (pytest resets its root to 0700).
    root = Path(tempfile.mkdtemp(prefix="arena-run-test-"))
    yield root / "arena-data"
    shutil.rmtree(root, ignore_errors=True)


@dataclass
class Launch:
    process: asyncio.subprocess.Process
    log: Path
    gateway: str

    @property
    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def nats_port(self) -> int:
        found = re.search(r"embedded NATS with JetStream on 127\.0\.0\.1:(\d+)", self.text)
        assert found, self.text[-2000:]
        return int(found.group(1))

    def supervised(self) -> list[psutil.Process]:
        found: list[psutil.Process] = psutil.Process(self.process.pid).children(recursive=True)
        return found


def _env(gateway_port: int) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("NATS_URL", "DATABASE_URL", "ARENA_ADMIN_TOKEN")
    }
    env.update(
        {
            "ARENA_AGENTS_FILE": str(LINEUP),
            "ARENA_CYCLE_SECONDS": "3",
            "ARENA_DECISION_SECONDS": "2",
            "ARENA_TICK_SECONDS": "1",
            "MARKET_SOURCE": "simulator",
            "GATEWAY_PORT": str(gateway_port),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


async def _launch(data_dir: Path, log: Path) -> Launch:
    port = free_port()
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "devstack", "run", "--data-dir", str(data_dir),
            cwd=PROJECT_ROOT, env=_env(port), stdout=out, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
    return Launch(process, log, f"http://127.0.0.1:{port}")


async def _cycles(launch: Launch, http: httpx.AsyncClient, at_least: int) -> int:
    async def enough() -> int | None:
        if launch.process.returncode is not None:
            raise AssertionError(launch.text[-3000:])
        status = (await http.get("/scheduler/status")).json()
        completed = int(status["cycles_completed"])
        return completed if completed >= at_least else None

    done: int = await eventually(enough, timeout=180, what=f"{at_least} completed cycles")
    return done


async def _stop(launch: Launch) -> int:
    started = launch.supervised()
    launch.process.send_signal(signal.SIGINT)
    code = await asyncio.wait_for(launch.process.wait(), timeout=90)
    _, alive = psutil.wait_procs(started, timeout=30)
    assert alive == [], f"still running after Ctrl-C: {[p.cmdline() for p in alive]}"
    return code


def _passwords(data_dir: Path) -> dict[str, str]:
    lines = (data_dir / "nats" / "passwords.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


class Probe:
    """A NATS client that records the server's refusals."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    async def connect(self, url: str) -> NatsClient:
        async def on_error(exc: Exception) -> None:
            self.errors.append(str(exc).lower())

        return await nats.connect(url, error_cb=on_error, allow_reconnect=False)

    def refused(self, subject: str) -> bool:
        return any("permissions violation" in e and subject.lower() in e for e in self.errors)


def _forged_verdict(cycle_id: str) -> Verdict:
    now = datetime.now(UTC)
    action = Action(action=TradeAction.BUY, symbol="BTCUSDT", margin_usd=Decimal(10), leverage=100)
    decision = Decision(
        decision_id=Decision.make_id(cycle_id, "idle"),
        cycle_id=cycle_id,
        agent_id="idle",
        decided_at=now,
        decision_deadline=now,
        actions=(action,),
        reasoning="a 100x position, approved by nobody",
    )
    return Verdict(
        verdict_id=decision.decision_id,
        decided_at=now,
        decision=decision,
        results=(ActionResult(index=0, action=action, approved=True),),
    )


async def _probe_the_locks(launch: Launch, data_dir: Path, http: httpx.AsyncClient) -> None:
    port = launch.nats_port()
    passwords = _passwords(data_dir)
    with pytest.raises(Exception, match=r"[Aa]uthorization"):
        await nats.connect(f"nats://127.0.0.1:{port}", allow_reconnect=False)

    tooling = Probe()
    nc = await tooling.connect(
        f"nats://tooling:{passwords['NATS_PASSWORD_TOOLING']}@127.0.0.1:{port}"
    )
    try:
        await nc.publish(subjects.decision_verdict("momentum"), b"{}")
        await nc.publish(channels.SCHEDULER_PAUSE.subject, SchedulerCommand().to_bytes())
        await nc.flush()
        await eventually(
            lambda: (
                tooling.refused(channels.SCHEDULER_PAUSE.subject)
                and tooling.refused(subjects.decision_verdict("momentum"))
            ),
            what="the read-only user's publishes refused",
        )
    finally:
        await nc.close()
    status = (await http.get("/scheduler/status")).json()
    assert status["paused"] is False

    # Risk's own credentials, a cycle the market announced, an agent with no decision in
    # it: everything a verdict needs to be applied, except that it breaks the limits.
    latest = (await http.get("/trading/decisions?limit=1")).json()["decisions"][0]
    cycle_id = latest["decision"]["cycle_id"]
    risk = await nats.connect(
        f"nats://risk:{passwords['NATS_PASSWORD_RISK']}@127.0.0.1:{port}", allow_reconnect=False
    )
    try:
        forged = _forged_verdict(cycle_id)
        await risk.jetstream().publish(
            subjects.decision_verdict("idle"),
            forged.to_bytes(),
            headers={"Nats-Msg-Id": f"forged:{forged.verdict_id}"},
        )
    finally:
        await risk.close()
    db = await asyncpg.connect(f"postgresql://postgres@/arena?host={data_dir / 'postgres'}")
    try:
        row: Any = await eventually(
            lambda: db.fetchrow(
                "SELECT reason_codes, rejection_reason FROM rejected_decisions "
                "WHERE decision_id = $1",
                forged.verdict_id,
            ),
            timeout=30,
            what="the forged verdict recorded as refused",
        )
        assert "ledger_leverage_out_of_range" in row["reason_codes"]
        assert "leverage 100x" in row["rejection_reason"]
        assert await db.fetchval("SELECT count(*) FROM positions WHERE llm_id = 'idle'") == 0
    finally:
        await db.close()


async def _kill_and_watch_return(launch: Launch, http: httpx.AsyncClient) -> None:
    victims = [
        p
        for p in launch.supervised()
        if any(m in p.cmdline() for m in ("services.risk", "services.agent"))
    ]
    killed = {"risk", "agent"} & {p.cmdline()[-1].rsplit(".", 1)[-1] for p in victims}
    assert killed == {"risk", "agent"}, [p.cmdline() for p in victims]
    agent = next(p for p in victims if "services.agent" in p.cmdline())
    risk = next(p for p in victims if "services.risk" in p.cmdline())
    before = (await http.get("/scheduler/status")).json()["cycles_completed"]
    for victim in (agent, risk):
        victim.send_signal(signal.SIGKILL)

    async def back() -> bool:
        processes = (await http.get("/health")).json()["processes"] or {}
        restarted = {n for n, p in processes.items() if p["restarts"] >= 1}
        running = all(p["state"] == "RUNNING" for p in processes.values())
        # An agent's own process (agent-<id>) or the host of the baselines (agents-...).
        return "risk" in restarted and any(n.startswith("agent") for n in restarted) and running

    await eventually(back, timeout=90, what="the killed processes restarted")
    await _cycles(launch, http, before + 2)
    assert "risk exited unexpectedly" in launch.text


async def test_run_supervises_locks_down_and_keeps_the_race(data_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    launch = await _launch(data_dir, log)
    try:
        async with httpx.AsyncClient(base_url=launch.gateway, timeout=10) as http:
            await _cycles(launch, http, 2)
            accounts = (await http.get("/trading/accounts")).json()["accounts"]
            assert {a["agent_id"] for a in accounts} == {"momentum", "random", "idle"}
            await _probe_the_locks(launch, data_dir, http)
            await _kill_and_watch_return(launch, http)
            completed = (await http.get("/scheduler/status")).json()["cycles_completed"]
            last = (await http.get("/trading/decisions?limit=1")).json()["decisions"][0]["decision"]
    finally:
        code = await _stop(launch)
    assert code == 0, launch.text[-3000:]
    assert "admin token (shown once" in launch.text
    assert "custom tools connect read-only as tooling" in launch.text
    assert oct((data_dir / "nats" / "passwords.env").stat().st_mode & 0o777) == "0o600"
    first_passwords = _passwords(data_dir)

    log.write_text("")
    again = await _launch(data_dir, log)
    try:
        async with httpx.AsyncClient(base_url=again.gateway, timeout=10) as http:
            # The market's count goes on from where it was, and the books still hold the
            # first run's decisions: the same race, continued.
            await _cycles(again, http, completed + 1)
            decisions = (await http.get(f"/trading/decisions/{last['agent_id']}?limit=500")).json()
            ids = {d["decision"]["decision_id"] for d in decisions["decisions"]}
            assert last["decision_id"] in ids
    finally:
        code = await _stop(again)
    assert code == 0, again.text[-3000:]
    assert "admin token (shown once" not in again.text
    assert _passwords(data_dir) == first_passwords
