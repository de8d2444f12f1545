"""Every REST path of SPEC.md and the extras, their error answers, and scheduler control."""

from __future__ import annotations

import pytest

from services.common.clock import ManualClock
from services.common.contracts import (
    Decisions,
    EquitySeries,
    Portfolio,
    Positions,
    Prices,
    SchedulerStatus,
    SnapshotReply,
    Stats,
    Trades,
    VerifyReport,
)
from services.gateway.responses import (
    NextRun,
    SchedulerStats,
    SymbolIndicators,
    Ticker,
    TradingStatus,
)
from services.gateway.security import CONTENT_SECURITY_POLICY
from tests.gateway.harness import ADMIN_TOKEN, NOW, Gateway, MakeSettings, gateway

# SPEC.md's 23 endpoints: (method, path as documented).
SPEC_ENDPOINTS = [
    ("GET", "/"),
    ("GET", "/health"),
    ("GET", "/trading/status"),
    ("GET", "/trading/accounts"),
    ("GET", "/trading/accounts/{llm_id}"),
    ("GET", "/trading/positions"),
    ("GET", "/trading/positions/{llm_id}"),
    ("GET", "/trading/trades"),
    ("GET", "/trading/trades/{llm_id}"),
    ("GET", "/trading/leaderboard"),
    ("GET", "/market/snapshot"),
    ("GET", "/market/prices"),
    ("GET", "/market/price/{symbol}"),
    ("GET", "/market/ticker/{symbol}"),
    ("GET", "/market/indicators/{symbol}"),
    ("GET", "/scheduler/status"),
    ("POST", "/scheduler/trigger"),
    ("POST", "/scheduler/pause"),
    ("POST", "/scheduler/resume"),
    ("GET", "/scheduler/stats"),
    ("GET", "/scheduler/next-run"),
    ("WEBSOCKET", "/ws"),
    ("GET", "/ws/stats"),
]
EXTRAS = [
    "/trading/decisions",
    "/trading/decisions/{llm_id}",
    "/trading/equity",
    "/trading/stats",
    "/trading/agents",
    "/audit/verify",
]
SYMBOLS = "BTCUSDT,ETHUSDT"


def test_the_spec_lists_23_endpoints() -> None:
    assert len(SPEC_ENDPOINTS) == 23


async def test_every_spec_path_is_documented_with_a_typed_response(
    nats_url: str, make_settings: MakeSettings
) -> None:
    async with gateway(nats_url, make_settings, ledger=False, market=False) as gw:
        spec = (await gw.http.get("/openapi.json")).json()
        root = (await gw.http.get("/")).json()
    listed = {(m, e["path"]) for e in root["endpoints"] for m in e["methods"]}
    for method, path in SPEC_ENDPOINTS:
        assert (method, path) in listed, (method, path)
        if method == "WEBSOCKET":
            continue
        operation = spec["paths"][path][method.lower()]
        ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert "$ref" in ok, (path, ok)
    for path in EXTRAS:
        assert (
            "$ref"
            in spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"][
                "schema"
            ]
        ), path
    assert root["dashboard"] == "/dashboard/"


async def test_trading_endpoints_answer_from_the_ledger(
    nats_url: str, make_settings: MakeSettings
) -> None:
    async with gateway(nats_url, make_settings, ARENA_SYMBOLS=SYMBOLS) as gw:
        status = TradingStatus.model_validate((await gw.http.get("/trading/status")).json())
        assert status.scheduler is not None and status.market_source == "simulator"
        assert status.accounts == 3
        assert [a.agent_id for a in status.agents] == ["momentum", "mean-reversion", "random"]

        one = Portfolio.model_validate((await gw.http.get("/trading/accounts/random")).json())
        assert one.account.agent_id == "random"

        every = Positions.model_validate((await gw.http.get("/trading/positions")).json())
        assert every.total == 3
        mine = Positions.model_validate((await gw.http.get("/trading/positions/momentum")).json())
        assert [p.agent_id for p in mine.positions] == ["momentum"]
        assert mine.positions[0].liquidation_price is not None

        page = Trades.model_validate((await gw.http.get("/trading/trades?limit=2&offset=1")).json())
        assert (len(page.trades), page.total) == (2, 9)
        theirs = Trades.model_validate((await gw.http.get("/trading/trades/random")).json())
        assert {t.agent_id for t in theirs.trades} == {"random"}

        decisions = Decisions.model_validate((await gw.http.get("/trading/decisions")).json())
        assert decisions.decisions[0].decision.reasoning == "EMA 20 crossed above EMA 50"
        none = Decisions.model_validate((await gw.http.get("/trading/decisions/random")).json())
        assert none.total == 0

        series = EquitySeries.model_validate(
            (await gw.http.get("/trading/equity?agent_id=momentum")).json()
        )
        assert len(series.points) == 2 and {p.agent_id for p in series.points} == {"momentum"}
        stats = Stats.model_validate((await gw.http.get("/trading/stats")).json())
        assert len(stats.agents) == 3
        report = VerifyReport.model_validate((await gw.http.get("/audit/verify")).json())
        assert report.ok


async def test_market_and_scheduler_reads(nats_url: str, make_settings: MakeSettings) -> None:
    async with gateway(nats_url, make_settings, ARENA_SYMBOLS=SYMBOLS) as gw:
        snapshot = SnapshotReply.model_validate((await gw.http.get("/market/snapshot")).json())
        assert snapshot.snapshot is not None and snapshot.snapshot.source == "simulator"
        prices = Prices.model_validate((await gw.http.get("/market/prices")).json())
        assert [p.symbol for p in prices.prices] == ["BTCUSDT", "ETHUSDT"]
        one = (await gw.http.get("/market/price/ethusdt")).json()
        assert (one["symbol"], one["last_price"]) == ("ETHUSDT", "3000.25")
        ticker = Ticker.model_validate((await gw.http.get("/market/ticker/BTCUSDT")).json())
        assert ticker.funding_rate > 0
        ind = SymbolIndicators.model_validate(
            (await gw.http.get("/market/indicators/BTCUSDT")).json()
        )
        assert ind.indicators.rsi_14 == 55.5

        stats = SchedulerStats.model_validate((await gw.http.get("/scheduler/stats")).json())
        assert stats.success_rate == 0.75
        next_run = NextRun.model_validate((await gw.http.get("/scheduler/next-run")).json())
        assert next_run.next_run_at is not None
        ws_stats = (await gw.http.get("/ws/stats")).json()
        assert ws_stats == {
            "connected_clients": 0,
            "max_clients": 500,
            "messages_sent": 0,
            "clients_dropped": 0,
            "clients_refused": 0,
            "origins_refused": 0,
            "queue_size": 256,
            "client_buffer_bytes": 1024 * 1024,
            "send_timeout_seconds": 5.0,
        }


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("/trading/accounts/nobody", "unknown agent 'nobody'"),
        ("/trading/positions/nobody", "unknown agent"),
        ("/trading/trades/nobody", "known agents: momentum, mean-reversion, random"),
        ("/trading/decisions/nobody", "unknown agent"),
        ("/trading/equity?agent_id=nobody", "unknown agent"),
        ("/market/price/DOGEUSDT", "symbol 'DOGEUSDT' is not traded here"),
        ("/market/ticker/FOO", "symbols: BTCUSDT, ETHUSDT"),
        ("/market/indicators/FOO", "not traded"),
    ],
)
async def test_unknown_agent_or_symbol_is_404_with_a_message(
    nats_url: str, make_settings: MakeSettings, path: str, fragment: str
) -> None:
    async with gateway(nats_url, make_settings, ARENA_SYMBOLS=SYMBOLS) as gw:
        response = await gw.http.get(path)
        assert response.status_code == 404, response.text
        assert fragment in response.json()["detail"]


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("/trading/trades?limit=0", "limit:"),
        ("/trading/trades?limit=501", "less than or equal to 500"),
        ("/trading/positions?offset=-1", "offset:"),
        ("/trading/positions?status=maybe", "status:"),
        ("/trading/accounts/Not%20An%20Id", "llm_id:"),
        ("/trading/equity?since=yesterday", "since:"),
    ],
)
async def test_a_bad_parameter_is_422_with_a_message(
    nats_url: str, make_settings: MakeSettings, path: str, fragment: str
) -> None:
    async with gateway(nats_url, make_settings, ledger=False, market=False) as gw:
        response = await gw.http.get(path)
        assert response.status_code == 422, response.text
        assert isinstance(response.json()["detail"], str)
        assert fragment in response.json()["detail"]


async def test_silent_services_are_503_naming_them(
    nats_url: str, make_settings: MakeSettings
) -> None:
    ledger_paths = ["/trading/positions", "/trading/trades", "/trading/decisions", "/audit/verify"]
    market_paths = ["/market/snapshot", "/market/prices", "/market/ticker/BTCUSDT"]
    async with gateway(
        nats_url, make_settings, ledger=False, market=False, ARENA_SYMBOLS=SYMBOLS
    ) as gw:
        for path in ledger_paths + market_paths + ["/scheduler/next-run"]:
            response = await gw.http.get(path)
            assert response.status_code == 503, (path, response.text)
            service = "ledger" if path in ledger_paths else "market"
            assert response.json()["detail"].startswith(f"{service} did not answer"), path
        status = (await gw.http.get("/trading/status")).json()
        assert set(status["unavailable"]) == {"scheduler", "accounts"}
        assert status["agents"]  # the line-up is known without any service


async def test_control_without_a_configured_token_is_403_explaining_how(gw: Gateway) -> None:
    response = await gw.http.post("/scheduler/pause")
    assert response.status_code == 403
    assert "ARENA_ADMIN_TOKEN" in response.json()["detail"]
    assert gw.state.control_calls == []


async def test_control_needs_the_right_token(nats_url: str, make_settings: MakeSettings) -> None:
    async with gateway(nats_url, make_settings, ARENA_ADMIN_TOKEN=ADMIN_TOKEN) as gw:
        missing = await gw.http.post("/scheduler/pause")
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = await gw.http.post("/scheduler/pause", headers={"Authorization": "Bearer nope"})
        assert (wrong.status_code, wrong.json()["detail"]) == (401, "the admin token is wrong")
        assert gw.state.control_calls == []

        auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        paused = await gw.http.post("/scheduler/pause", headers=auth)
        assert SchedulerStatus.model_validate(paused.json()).paused
        refused = await gw.http.post("/scheduler/trigger", headers=auth)
        assert refused.status_code == 422
        assert "paused" in refused.json()["detail"]
        resumed = await gw.http.post("/scheduler/resume", headers=auth)
        assert not SchedulerStatus.model_validate(resumed.json()).paused
        triggered = await gw.http.post("/scheduler/trigger", headers=auth)
        assert triggered.status_code == 200
        assert gw.state.control_calls == [
            "pause:gateway-admin",
            "trigger:gateway-admin",
            "resume:gateway-admin",
            "trigger:gateway-admin",
        ]


async def test_control_calls_are_rate_limited(nats_url: str, make_settings: MakeSettings) -> None:
    clock = ManualClock(NOW)
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with gateway(nats_url, make_settings, clock=clock, ARENA_ADMIN_TOKEN=ADMIN_TOKEN) as gw:
        for _ in range(10):
            assert (await gw.http.post("/scheduler/resume", headers=auth)).status_code == 200
        limited = await gw.http.post("/scheduler/resume", headers=auth)
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "60"
        assert "at most 10 per 60 s" in limited.json()["detail"]
        clock.advance(61)
        assert (await gw.http.post("/scheduler/resume", headers=auth)).status_code == 200
        assert len(gw.state.control_calls) == 11


async def test_dashboard_is_served_with_a_strict_content_security_policy(
    nats_url: str, make_settings: MakeSettings
) -> None:
    async with gateway(nats_url, make_settings, ledger=False, market=False) as gw:
        page = await gw.http.get("/dashboard/")
        assert page.status_code == 200
        assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert "script-src 'self'" in CONTENT_SECURITY_POLICY
        assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
        assert '<script src="app.js"' in page.text
        assert "<script>" not in page.text  # nothing inline
        for asset in ("app.js", "style.css", "vendor/uPlot.iife.min.js", "vendor/LICENSE"):
            assert (await gw.http.get(f"/dashboard/{asset}")).status_code == 200, asset
        assert "innerHTML" not in (await gw.http.get("/dashboard/app.js")).text


async def test_metrics_count_requests_and_latency_by_route(gw: Gateway) -> None:
    await gw.http.get("/trading/accounts/momentum")
    await gw.http.get("/trading/accounts/nobody")
    route = "/trading/accounts/{llm_id}"
    assert gw.sample("arena_gateway_http_requests_total", {"route": route, "status": "200"}) == 1
    assert gw.sample("arena_gateway_http_requests_total", {"route": route, "status": "404"}) == 1
    assert gw.sample("arena_gateway_http_request_duration_seconds_count", {"route": route}) == 2
    text = (await gw.http.get("/metrics")).text
    assert "arena_gateway_http_request_duration_seconds_bucket" in text
