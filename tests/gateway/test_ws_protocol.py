"""The WebSocket protocol on real sockets: the initial state, relayed market and agent
events, scheduler changes, and a slow client dropped without holding up a fast one."""

from __future__ import annotations

import asyncio
from functools import partial

from services.common import subjects
from tests import builders
from tests.gateway import standins
from tests.gateway.harness import (
    ADMIN_TOKEN,
    NOW,
    MakeSettings,
    gateway,
    stalled_client,
    ws_client,
)
from tests.support import eventually


async def test_initial_data_has_every_part_of_the_current_state(
    nats_url: str, make_settings: MakeSettings
) -> None:
    async with gateway(nats_url, make_settings) as gw, ws_client(gw.ws_url) as client:
        initial = client.messages[1]
        assert initial["type"] == "initial_data"
        data = initial["data"]
        assert [a["agent_id"] for a in data["accounts"]] == list(standins.AGENTS)
        assert [e["rank"] for e in data["leaderboard"]] == [1, 2, 3]
        assert {p["agent_id"] for p in data["positions"]} == set(standins.AGENTS)
        assert data["scheduler_status"]["source"] == "simulator"
        assert data["market_snapshot"]["cycle_id"] == "c-0"
        assert [a["status"] for a in data["agents"]] == ["unknown"] * 3
        assert data["unavailable"] == {}


async def test_snapshots_heartbeats_and_scheduler_changes_reach_clients(
    nats_url: str, make_settings: MakeSettings
) -> None:
    async with (
        gateway(nats_url, make_settings, ARENA_ADMIN_TOKEN=ADMIN_TOKEN) as gw,
        ws_client(gw.ws_url) as client,
    ):
        publisher = await standins.connect(nats_url, "publisher")
        await publisher.publish(subjects.MARKET_SNAPSHOT, standins.snapshot("c-9"), "c-9")
        reason = "API key missing: set DEEPSEEK_API_KEY"
        beat = builders.disabled_heartbeat("random", "random", reason, NOW)
        await publisher.publish(subjects.agent_heartbeat("random"), beat, "hb-1")
        # The same status again is not news for the dashboard.
        await publisher.publish(subjects.agent_heartbeat("random"), beat, "hb-2")
        await publisher.close()
        await eventually(lambda: "agent_status" in client.types(), what="agent_status")
        auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        assert (await gw.http.post("/scheduler/pause", headers=auth)).status_code == 200
        await eventually(lambda: "scheduler_status" in client.types(), what="scheduler_status")

        assert client.types()[2:] == ["market_snapshot", "agent_status", "scheduler_status"]
        assert client.messages[2]["data"]["cycle_id"] == "c-9"
        assert client.messages[3]["data"]["reason"] == "API key missing: set DEEPSEEK_API_KEY"
        assert client.messages[4]["data"]["paused"] is True

        health = (await gw.http.get("/health")).json()
        assert health["disabled_agents"] == ["random"]
        status = (await gw.http.get("/trading/status")).json()
        assert [a["agent_id"] for a in status["disabled_agents"]] == ["random"]
        assert status["disabled_agents"][0]["reason"] == "API key missing: set DEEPSEEK_API_KEY"


async def test_a_client_that_stops_reading_is_dropped_and_others_get_everything(
    nats_url: str, make_settings: MakeSettings
) -> None:
    count = 120
    # Big messages fill the stalled client's socket buffers quickly; then its queue fills
    # (long before the send timeout, kept out of the way here).
    reasoning = "x" * 64_000
    async with (
        gateway(nats_url, make_settings, ARENA_WS_QUEUE_SIZE=8, ARENA_WS_SEND_TIMEOUT=60) as gw,
        ws_client(gw.ws_url) as fast,
    ):
        stalled = await asyncio.to_thread(stalled_client, gw.settings.gateway_port)
        try:
            await eventually(
                lambda: gw.sample("arena_gateway_ws_clients") == 2, what="both clients connected"
            )
            publisher = await standins.connect(nats_url, "publisher")
            for n in range(count):
                event = standins.decision("momentum", f"c-{n}", reasoning)
                await publisher.publish(
                    subjects.decision_proposed("momentum"), event, event.decision_id
                )
            await publisher.close()

            await eventually(partial(fast.has, 2 + count), timeout=30, what="every decision")
            assert [m["data"]["cycle_id"] for m in fast.messages[2:]] == [
                f"c-{n}" for n in range(count)
            ]
            await eventually(
                lambda: (
                    gw.sample("arena_gateway_ws_clients_dropped_total", {"reason": "queue"}) == 1
                ),
                what="the stalled client dropped",
            )
            assert gw.sample("arena_gateway_ws_clients") == 1
            stats = (await gw.http.get("/ws/stats")).json()
            assert (stats["connected_clients"], stats["clients_dropped"]) == (1, 1)
            assert not fast.connection.close_code  # the fast one is still connected
        finally:
            stalled.close()
