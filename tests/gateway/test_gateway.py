"""The gateway on a real nats-server and a real uvicorn port, with stand-in responders
for the ledger and the market (tests/gateway/standins.py)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial

import nats

from services.common import channels, subjects
from services.common.bus import BadRequest, NotFound
from services.common.clock import ManualClock
from services.common.contracts import (
    AccountEvent,
    Accounts,
    AccountsQuery,
    Action,
    CycleCompleted,
    CycleStarted,
    Decision,
    Leaderboard,
    LeaderboardQuery,
    PositionEvent,
    PositionSide,
    PositionStatus,
    PositionView,
    SchedulerStatus,
    TradeAction,
)
from services.common.runner import ServiceHost
from services.gateway.service import build
from tests.gateway import standins
from tests.gateway.harness import NOW, SHORT_TIMEOUT, Gateway, MakeSettings, gateway, ws_client
from tests.support import eventually, publish_raw

# ------------------------------------------------------------------ events to relay


def cycle_started() -> CycleStarted:
    return CycleStarted(
        cycle_id="c-1",
        sequence=1,
        started_at=NOW,
        decision_deadline=NOW + timedelta(seconds=4),
        symbols=("BTCUSDT",),
        agents=("momentum",),
    )


def decision() -> Decision:
    return Decision(
        decision_id=Decision.make_id("c-1", "momentum"),
        cycle_id="c-1",
        agent_id="momentum",
        decided_at=NOW,
        decision_deadline=NOW + timedelta(seconds=4),
        actions=(
            Action(
                action=TradeAction.BUY,
                symbol="BTCUSDT",
                margin_usd=Decimal(20),
                leverage=5,
                confidence=0.7,
            ),
        ),
        reasoning="EMA 20 crossed above EMA 50",
        model="ema-cross",
        prompt="the whole prompt: every symbol, its candles, the account",
        raw_response='{"actions": [{"action": "BUY"}]}',
    )


def position_opened() -> PositionEvent:
    return PositionEvent(
        event_id="p-1:opened",
        kind="opened",
        cycle_id="c-1",
        position=PositionView(
            position_id="p-1",
            agent_id="momentum",
            symbol="BTCUSDT",
            side=PositionSide.LONG,
            status=PositionStatus.OPEN,
            entry_price=Decimal("65000.5"),
            current_price=Decimal("65000.5"),
            quantity=Decimal("0.0015"),
            leverage=5,
            margin=Decimal(20),
            unrealized_pnl=Decimal(0),
            opened_at=NOW,
        ),
        fee=Decimal("0.05"),
        at=NOW,
    )


def account_changed() -> AccountEvent:
    return AccountEvent(event_id="a-1", account=standins.account("momentum"), at=NOW)


def cycle_completed() -> CycleCompleted:
    return CycleCompleted(
        cycle_id="c-1", completed_at=NOW, duration_seconds=1.2, timed_out=False, outcomes=()
    )


# ------------------------------------------------------------------ REST


async def test_endpoints_answer_with_the_contract_shapes(gw: Gateway) -> None:
    root = await gw.http.get("/")
    assert root.status_code == 200
    body = root.json()
    assert body["docs"] == "/docs"
    assert body["health"] == "/health"
    listed = {e["path"] for e in body["endpoints"]}
    assert {"/", "/health", "/trading/accounts", "/scheduler/status", "/ws"} <= listed

    accounts = await gw.http.get("/trading/accounts")
    assert accounts.status_code == 200
    assert Accounts.model_validate(accounts.json()) == standins.ACCOUNTS
    assert accounts.json()["accounts"][0]["balance"] == "90.25"  # Decimal kept exact

    leaderboard = await gw.http.get("/trading/leaderboard")
    assert Leaderboard.model_validate(leaderboard.json()) == standins.LEADERBOARD

    status = await gw.http.get("/scheduler/status")
    assert SchedulerStatus.model_validate(status.json()) == standins.STATUS

    health = await gw.http.get("/health")
    assert health.status_code == 200, health.text
    assert health.json()["status"] == "ok"
    assert all(health.json()[part]["ok"] for part in ("nats", "ledger", "market"))

    metrics = await gw.http.get("/metrics")
    assert metrics.status_code == 200
    assert (
        gw.sample(
            "arena_gateway_http_requests_total", {"route": "/trading/accounts", "status": "200"}
        )
        == 1
    )
    assert "arena_gateway_ws_clients" in metrics.text


async def test_without_a_ledger_its_endpoints_answer_503_naming_it(
    nats_url: str, make_settings: MakeSettings
) -> None:
    async with gateway(nats_url, make_settings, ledger=False) as gw:
        for path in ("/trading/accounts", "/trading/leaderboard"):
            response = await gw.http.get(path)
            assert response.status_code == 503, response.text
            assert response.json()["detail"].startswith("ledger did not answer"), response.text
        health = await gw.http.get("/health")
        assert health.status_code == 503
        report = health.json()
        assert report["status"] == "degraded"
        assert (report["nats"]["ok"], report["ledger"]["ok"], report["market"]["ok"]) == (
            True,
            False,
            True,
        )
        assert "ledger did not answer" in report["ledger"]["detail"]
        assert (
            gw.sample(
                "arena_gateway_http_requests_total", {"route": "/trading/accounts", "status": "503"}
            )
            == 1
        )


async def test_health_is_degraded_when_the_market_is_absent(
    nats_url: str, make_settings: MakeSettings
) -> None:
    async with gateway(nats_url, make_settings, market=False) as gw:
        health = await gw.http.get("/health")
        assert health.status_code == 503
        report = health.json()
        assert report["status"] == "degraded"
        assert (report["ledger"]["ok"], report["market"]["ok"]) == (True, False)
        assert "market did not answer" in report["market"]["detail"]
        status = await gw.http.get("/scheduler/status")
        assert status.status_code == 503
        assert status.json()["detail"].startswith("market did not answer")


async def test_remote_not_found_is_404_and_bad_request_is_422(
    nats_url: str, make_settings: MakeSettings
) -> None:
    picky = await standins.connect(nats_url, "ledger")

    async def accounts(_: AccountsQuery) -> Accounts:
        raise NotFound("no accounts yet")

    async def leaderboard(_: LeaderboardQuery) -> Leaderboard:
        raise BadRequest("leaderboard needs at least one cycle")

    await picky.serve(channels.LEDGER_QUERY_ACCOUNTS.subject, AccountsQuery, accounts)
    await picky.serve(channels.LEDGER_QUERY_LEADERBOARD.subject, LeaderboardQuery, leaderboard)
    try:
        async with gateway(nats_url, make_settings, ledger=False) as gw:
            missing = await gw.http.get("/trading/accounts")
            assert (missing.status_code, missing.json()) == (404, {"detail": "no accounts yet"})
            refused = await gw.http.get("/trading/leaderboard")
            assert refused.status_code == 422
            assert refused.json() == {"detail": "leaderboard needs at least one cycle"}
    finally:
        await picky.close()


async def test_openapi_documents_every_path(nats_url: str, make_settings: MakeSettings) -> None:
    async with gateway(nats_url, make_settings, ledger=False, market=False) as gw:
        spec = (await gw.http.get("/openapi.json")).json()
        assert {
            "/",
            "/health",
            "/trading/accounts",
            "/trading/leaderboard",
            "/scheduler/status",
        } <= set(spec["paths"])
        ok = spec["paths"]["/trading/accounts"]["get"]["responses"]
        assert ok["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/Accounts")
        assert "503" in ok
        assert "/metrics" not in spec["paths"]
        assert (await gw.http.get("/docs")).status_code == 200


# ------------------------------------------------------------------ WebSocket


async def test_ws_greets_then_relays_a_cycle_in_order_to_every_client(
    nats_url: str, make_settings: MakeSettings
) -> None:
    # (subject, event, natural id) in the order one cycle produces them
    cycle = [
        (subjects.CYCLE_STARTED, cycle_started(), "c-1"),
        (subjects.decision_proposed("momentum"), decision(), "c-1:momentum"),
        (subjects.ledger_position("momentum"), position_opened(), "p-1"),
        (subjects.ledger_account("momentum"), account_changed(), "a-1"),
        (subjects.CYCLE_COMPLETED, cycle_completed(), "c-1"),
    ]
    expected = [
        "cycle_start",
        "llm_decision",
        "position_update",
        "account_update",
        "cycle_complete",
    ]
    async with (
        gateway(nats_url, make_settings, market=False) as gw,
        ws_client(gw.ws_url) as first,
        ws_client(gw.ws_url) as second,
    ):
        publisher = await standins.connect(nats_url, "publisher")
        for subject, event, natural_id in cycle:
            await publisher.publish(subject, event, natural_id)
        await publisher.close()

        for client in (first, second):
            await eventually(partial(client.has, 7), what="the relayed cycle")
            assert client.types() == ["connection", "initial_data", *expected]
            for message in client.messages:
                assert set(message) == {"type", "data", "timestamp"}
                assert datetime.fromisoformat(message["timestamp"]) == NOW
            relayed = [m["data"] for m in client.messages[2:]]
            sent = [event.model_dump(mode="json") for _, event, _ in cycle]
            # Of a decision, what the dashboard shows: its prompt stays on the REST API.
            sent[1] = {k: v for k, v in sent[1].items() if k in standins.DECISION_SHOWN}
            assert relayed == sent
            assert "prompt" not in relayed[1]

        hello_first, hello_second = first.messages[0]["data"], second.messages[0]["data"]
        assert hello_first["client_id"] != hello_second["client_id"]
        assert datetime.fromisoformat(hello_first["server_time"]) == NOW

        initial = first.messages[1]["data"]
        assert Accounts(accounts=initial["accounts"]) == standins.ACCOUNTS
        assert [e["rank"] for e in initial["leaderboard"]] == [1, 2, 3]
        assert initial["scheduler_status"] is None  # no market in this test
        assert initial["unavailable"]["scheduler_status"].startswith("market did not answer")

        assert gw.sample("arena_gateway_ws_clients") == 2
        assert gw.sample("arena_gateway_ws_messages_sent_total") == 14


async def test_a_malformed_event_is_dead_lettered_and_the_next_one_relayed(
    nats_url: str, make_settings: MakeSettings
) -> None:
    async with gateway(nats_url, make_settings) as gw, ws_client(gw.ws_url) as client:
        watcher = await nats.connect(nats_url)
        letters = await watcher.subscribe(subjects.dead_letter("gateway"))
        publisher = await standins.connect(nats_url, "publisher")
        await publish_raw(publisher, subjects.CYCLE_STARTED, b'{"cycle_id": 17}')
        await publisher.publish(subjects.CYCLE_STARTED, cycle_started(), "c-1")
        await publisher.close()

        await eventually(lambda: "cycle_start" in client.types(), what="the good cycle_start")
        assert client.types() == ["connection", "initial_data", "cycle_start"]
        assert client.messages[2]["data"]["cycle_id"] == "c-1"

        letter = await letters.next_msg(timeout=5)
        assert letter.data == b'{"cycle_id": 17}'
        assert letter.headers is not None
        assert letter.headers["Arena-Dlq-Subject"] == subjects.CYCLE_STARTED
        assert (
            gw.sample(
                "arena_messages_dead_lettered_total",
                {"consumer": subjects.CYCLE_STARTED, "reason": "malformed"},
            )
            == 1
        )
        await watcher.close()


async def test_stopping_the_gateway_closes_open_websockets(
    nats_url: str, make_settings: MakeSettings
) -> None:
    settings = make_settings(ARENA_REQUEST_TIMEOUT=SHORT_TIMEOUT)
    host = ServiceHost("gateway", build, settings, ManualClock(NOW))
    await host.start()
    try:
        url = f"ws://127.0.0.1:{settings.gateway_port}/ws"
        async with ws_client(url) as client:
            await host.stop()
            await asyncio.wait_for(client.connection.wait_closed(), 5)
            assert client.connection.close_code == 1001
    finally:
        await host.stop()
