"""Every GET endpoint against the real market (simulator), ledger (Postgres), risk and
baseline agents on real NATS, after a real cycle; and the WebSocket view of that cycle."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AsyncExitStack

import httpx

from services.agent.service import build as build_agent
from services.agent.service import consumer_name
from services.common.settings import Settings
from services.gateway.service import build as build_gateway
from services.ledger.service import build as build_ledger
from services.market.service import build as build_market
from services.risk.service import build as build_risk
from tests.gateway.harness import ADMIN_TOKEN, LINEUP, ws_client
from tests.support import eventually, running

AGENTS = ("momentum", "mean-reversion", "random")
GET_PATHS = [
    "/",
    "/health",
    "/trading/status",
    "/trading/accounts",
    "/trading/accounts/momentum",
    "/trading/positions",
    "/trading/positions/momentum",
    "/trading/trades",
    "/trading/trades/random",
    "/trading/leaderboard",
    "/trading/decisions",
    "/trading/decisions/random",
    "/trading/equity",
    "/trading/stats",
    "/trading/agents",
    "/audit/verify",
    "/market/snapshot",
    "/market/prices",
    "/market/price/BTCUSDT",
    "/market/ticker/BTCUSDT",
    "/market/indicators/BTCUSDT",
    "/scheduler/status",
    "/scheduler/stats",
    "/scheduler/next-run",
    "/ws/stats",
    "/metrics",
    "/dashboard/",
]


async def test_every_endpoint_answers_from_the_real_services_after_a_cycle(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    def settings(**extra: object) -> Settings:
        return make_settings(
            ARENA_AGENTS_FILE=str(LINEUP),
            MARKET_SOURCE="simulator",
            DATABASE_URL=database_url,
            ARENA_SYMBOLS="BTCUSDT,ETHUSDT",
            ARENA_ADMIN_TOKEN=ADMIN_TOKEN,
            **extra,
        )

    gateway_settings = settings()
    base = f"http://127.0.0.1:{gateway_settings.gateway_port}"
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(running("ledger", build_ledger, settings()))
        await stack.enter_async_context(running("risk", build_risk, settings()))
        for agent_id in AGENTS:
            await stack.enter_async_context(
                running(consumer_name(agent_id), build_agent, settings(AGENT_ID=agent_id))
            )
        await stack.enter_async_context(running("gateway", build_gateway, gateway_settings))
        ws = await stack.enter_async_context(ws_client(f"{base.replace('http', 'ws')}/ws"))
        http = await stack.enter_async_context(httpx.AsyncClient(base_url=base, timeout=10))
        await stack.enter_async_context(running("market", build_market, settings()))

        async def cycle_done() -> bool:
            status = (await http.get("/scheduler/status")).json()
            return bool(status.get("cycles_completed", 0) >= 1)

        await eventually(cycle_done, timeout=40, what="a real cycle completed")
        await eventually(lambda: "cycle_complete" in ws.types(), what="cycle_complete relayed")

        for path in GET_PATHS:
            response = await http.get(path)
            assert response.status_code == 200, (path, response.status_code, response.text)

        board = (await http.get("/trading/leaderboard")).json()
        assert sorted(e["agent_id"] for e in board["entries"]) == sorted(AGENTS)
        decisions = (await http.get("/trading/decisions?limit=10")).json()
        assert decisions["total"] >= 3
        equity = (await http.get("/trading/equity")).json()
        assert {p["agent_id"] for p in equity["points"]} >= set(AGENTS)
        assert (await http.get("/market/prices")).json()["source"] == "simulator"
        missing = await http.get("/trading/trades/nobody")
        assert missing.status_code == 404
        auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        paused = await http.post("/scheduler/pause", headers=auth)
        assert (paused.status_code, paused.json()["paused"]) == (200, True)
        resumed = await http.post("/scheduler/resume", headers=auth)
        assert (resumed.status_code, resumed.json()["paused"]) == (200, False)

        # One cycle as a client saw it: start, then decisions, then completion.
        types = ws.types()
        assert types[:2] == ["connection", "initial_data"]
        start = types.index("cycle_start")
        end = types.index("cycle_complete")
        between = types[start:end]
        # Baselines decide at once; under heavy load one may still miss the deadline.
        assert between.count("llm_decision") >= 1, types
        cycle_id = ws.messages[start]["data"]["cycle_id"]
        assert ws.messages[end]["data"]["cycle_id"] == cycle_id
        await eventually(
            lambda: ws.types().count("scheduler_status") == 2, what="pause and resume relayed"
        )
