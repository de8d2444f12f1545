"""The whole arena as seven processes: market, three agents, risk, ledger, gateway."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import websockets

from devstack.ports import free_port
from services.common.lineup import load_lineup
from tests.e2e.processes import ServiceProcess
from tests.support import eventually

pytestmark = pytest.mark.e2e

LINEUP = Path(__file__).with_name("lineup.toml")
AGENTS = tuple(a.id for a in load_lineup(LINEUP).active)
CYCLES = 3


@pytest.fixture
def arena_env(nats_url: str, database_url: str) -> dict[str, str]:
    return {
        "NATS_URL": nats_url,
        "DATABASE_URL": database_url,
        "ARENA_CYCLE_SECONDS": "2",
        "ARENA_DECISION_SECONDS": "1.5",
        "ARENA_TICK_SECONDS": "0.5",
        "MARKET_SOURCE": "simulator",
        "GATEWAY_PORT": str(free_port()),
        "METRICS_PORT": "0",
        "ARENA_AGENTS_FILE": str(LINEUP),
    }


@pytest.fixture
def processes(arena_env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, ServiceProcess]]:
    procs = {
        "ledger": ServiceProcess("ledger", "ledger", arena_env, tmp_path),
        "risk": ServiceProcess("risk", "risk", arena_env, tmp_path),
        **{
            f"agent-{a}": ServiceProcess(
                f"agent-{a}", "agent", {**arena_env, "AGENT_ID": a}, tmp_path
            )
            for a in AGENTS
        },
        "gateway": ServiceProcess("gateway", "gateway", arena_env, tmp_path),
        "market": ServiceProcess("market", "market", arena_env, tmp_path),
    }
    try:
        yield procs
    finally:
        for proc in procs.values():
            with contextlib.suppress(Exception):
                proc.stop()


@contextlib.asynccontextmanager
async def websocket_events(url: str) -> AsyncIterator[list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []
    async with websockets.connect(url) as ws:

        async def collect() -> None:
            async for raw in ws:
                events.append(json.loads(raw))

        task = asyncio.create_task(collect())
        try:
            yield events
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                await task


def _one_cycle(events: list[dict[str, Any]], cycle_id: str) -> list[str]:
    """The WebSocket event types that belong to ``cycle_id``, in arrival order."""
    kinds = []
    for event in events:
        data = event["data"]
        if data.get("cycle_id") == cycle_id and event["type"] in (
            "cycle_start",
            "llm_decision",
            "cycle_complete",
        ):
            kinds.append(event["type"])
    return kinds


async def test_three_cycles_flow_through_every_service(
    processes: dict[str, ServiceProcess], arena_env: dict[str, str], database_url: str
) -> None:
    for name, proc in processes.items():
        if name != "market":
            proc.start()
    for name, proc in processes.items():
        if name != "market":
            await proc.wait_started()
    base = f"http://127.0.0.1:{arena_env['GATEWAY_PORT']}"

    async with (
        httpx.AsyncClient(base_url=base, timeout=10) as http,
        websocket_events(base.replace("http", "ws") + "/ws") as events,
    ):
        await eventually(lambda: len(events) >= 2, what="connection and initial_data")
        assert [e["type"] for e in events[:2]] == ["connection", "initial_data"]
        processes["market"].start()
        await processes["market"].wait_started()

        async def completed() -> int:
            response = await http.get("/scheduler/status")
            return int(response.json()["cycles_completed"]) >= CYCLES

        await eventually(completed, timeout=60, what=f"{CYCLES} completed cycles")

        accounts = (await http.get("/trading/accounts")).json()
        assert sorted(a["agent_id"] for a in accounts["accounts"]) == sorted(AGENTS)
        leaderboard = (await http.get("/trading/leaderboard")).json()
        assert [e["rank"] for e in leaderboard["entries"]] == [1, 2, 3]
        health = await http.get("/health")
        assert health.status_code == 200, health.text

        completes = [e["data"]["cycle_id"] for e in events if e["type"] == "cycle_complete"]
        assert len(completes) >= CYCLES
        for event in events:
            assert set(event) == {"type", "data", "timestamp"}
        for cycle_id in completes[:CYCLES]:
            kinds = _one_cycle(events, cycle_id)
            assert kinds == ["cycle_start", *["llm_decision"] * len(AGENTS), "cycle_complete"]
        decided = {
            e["data"]["agent_id"]
            for e in events
            if e["type"] == "llm_decision" and e["data"]["cycle_id"] == completes[0]
        }
        assert decided == set(AGENTS)

    conn = await asyncpg.connect(database_url)
    try:
        done = await conn.fetch(
            "SELECT cycle_id FROM cycles WHERE status = 'completed' ORDER BY started_at"
        )
        assert len(done) >= CYCLES
        for row in done[:CYCLES]:
            decisions = await conn.fetchval(
                "SELECT count(*) FROM decisions WHERE cycle_id = $1", row["cycle_id"]
            )
            prices = await conn.fetchval(
                "SELECT count(*) FROM market_data WHERE cycle_id = $1", row["cycle_id"]
            )
            assert (decisions, prices) == (len(AGENTS), 6)
        assert await conn.fetchval("SELECT count(*) FROM llm_accounts") == len(AGENTS)
    finally:
        await conn.close()

    exit_codes = {name: proc.stop() for name, proc in processes.items()}
    assert exit_codes == dict.fromkeys(processes, 0)
