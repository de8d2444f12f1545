"""LLM agents in-process on a real nats-server, their providers local fakes."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from services.agent.service import AgentService, build
from services.common import channels, subjects
from services.common.bus import Bus, Delivery, NotFound
from services.common.clock import ManualClock
from services.common.contracts import (
    Candle,
    Decision,
    Heartbeat,
    LlmCall,
    MarketSnapshot,
    SnapshotQuery,
    SnapshotReply,
    TradeAction,
)
from services.common.runner import ServiceHost
from services.common.settings import Settings
from tests.agent.llm_support import VALID, leaked
from tests.agent.standins import serve_ledger
from tests.builders import NOW, portfolio, snapshot
from tests.fakes import anthropic as claude
from tests.fakes import openai as gpt
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.openai import FakeOpenAI
from tests.support import collect, eventually, running

LINEUP = """
[[agents]]
id = "claude"
display_name = "Claude"
provider = "anthropic"
model = "claude-test"
base_url = "{anthropic}"
price_input_per_mtok = "3"
price_output_per_mtok = "15"
retry_backoff_seconds = 0

[[agents]]
id = "gpt"
display_name = "GPT"
provider = "openai"
model = "gpt-test"
base_url = "{openai}"
api_key_env = "OPENAI_API_KEY"
retry_backoff_seconds = 0
"""


@pytest.fixture
def lineup(tmp_path: Path, fake_anthropic: FakeAnthropic, fake_openai: FakeOpenAI) -> Path:
    path = tmp_path / "agents.toml"
    path.write_text(LINEUP.format(anthropic=fake_anthropic.base_url, openai=fake_openai.base_url))
    return path


async def publish(bus: Bus, clock: ManualClock, cycle_id: str) -> MarketSnapshot:
    snap = snapshot(cycle_id=cycle_id, deadline=clock.now() + timedelta(seconds=60))
    await bus.publish(subjects.MARKET_SNAPSHOT, snap, natural_id=snap.cycle_id)
    return snap


def metric(host: ServiceHost, name: str, **labels: str) -> float | None:
    return host.registry.get_sample_value(name, labels)


async def _served(bus: Bus, agent_id: str) -> tuple[list[Decision], list[LlmCall]]:
    """The stand-in ledger answers ``agent_id``'s portfolio; the decisions and model calls
    published from now on, as they arrive."""
    await serve_ledger(bus, portfolio(agent_id=agent_id))
    decisions = await collect(bus, subjects.DECISION_PROPOSED_ALL, Decision)
    return decisions, await collect(bus, subjects.LLM_CALL_ALL, LlmCall)


async def test_without_a_key_the_agent_holds_every_cycle_and_says_why(
    bus: Bus, make_settings: Callable[..., Settings], lineup: Path, fake_openai: FakeOpenAI
) -> None:
    decisions = await collect(bus, subjects.DECISION_PROPOSED_ALL, Decision)
    beats = await collect(bus, subjects.agent_heartbeat("gpt"), Heartbeat)
    settings = make_settings(ARENA_AGENTS_FILE=str(lineup), AGENT_ID="gpt", OPENAI_API_KEY=None)
    clock = ManualClock(NOW)
    async with running("agent-gpt", build, settings, clock) as host:
        for n in (1, 2):
            await publish(bus, clock, f"c{n}")
        # No ledger answers: a disabled agent does not even need its portfolio.
        await eventually(lambda: len(decisions) == 2, what="two HOLDs")
        for decision in decisions:
            assert [a.action for a in decision.actions] == [TradeAction.HOLD]
            assert decision.error == "disabled: OPENAI_API_KEY is not set"
        await eventually(lambda: beats, what="a heartbeat")
        assert (beats[0].status, beats[0].reason) == ("disabled", "OPENAI_API_KEY is not set")
        assert metric(host, "arena_agent_disabled", agent="gpt") == 1
        assert metric(host, "arena_agent_decisions_total", agent="gpt", outcome="disabled") == 2
    assert fake_openai.requests == []


async def test_a_keyed_agent_trades_and_accounts_for_every_call(
    bus: Bus, make_settings: Callable[..., Settings], lineup: Path, fake_anthropic: FakeAnthropic
) -> None:
    decisions, calls = await _served(bus, "claude")
    fake_anthropic.default = claude.message(VALID, input_tokens=1000, output_tokens=200)
    fake_anthropic.then(claude.error(529))
    settings = make_settings(
        ARENA_AGENTS_FILE=str(lineup), AGENT_ID="claude", ANTHROPIC_API_KEY="sk-ant-test"
    )
    clock = ManualClock(NOW)
    async with running("agent-claude", build, settings, clock) as host:
        await publish(bus, clock, "c1")
        await eventually(lambda: decisions and len(calls) == 2, what="a decision and two calls")
        (decision,) = decisions
        assert [(a.action, a.symbol) for a in decision.actions] == [(TradeAction.BUY, "BTCUSDT")]
        assert decision.error is None and decision.model == "claude-test"
        # The portfolio it decided on travels with it: risk judges against the same one.
        assert decision.portfolio == portfolio(agent_id="claude")
        assert decision.prompt_version == "v1" and decision.prompt is not None
        assert decision.prompt_sha256 is not None and len(decision.prompt_sha256) == 64
        assert decision.raw_response == VALID
        assert decision.usage is not None and decision.usage.prompt_tokens == 1000
        assert [(c.success, c.status_code) for c in calls] == [(False, 529), (True, 200)]
        assert calls[1].call_id == "c1:claude:d1:2" and calls[1].cycle_id == "c1"
        # Counted once the decision is out: wait for the count rather than race it.
        await eventually(
            lambda: (
                metric(host, "arena_agent_llm_tokens_total", agent="claude", kind="prompt") == 1000
            ),
            what="the prompt tokens counted",
        )
        assert metric(host, "arena_agent_llm_cost_usd_total", agent="claude") == pytest.approx(
            0.006
        )
        errors = metric(
            host,
            "arena_agent_llm_calls_total",
            agent="claude",
            provider="anthropic",
            result="error",
        )
        assert errors == 1


async def test_broken_output_is_a_hold_with_the_error_every_cycle(
    bus: Bus, make_settings: Callable[..., Settings], lineup: Path, fake_openai: FakeOpenAI
) -> None:
    await serve_ledger(bus, portfolio(agent_id="gpt"))
    decisions = await collect(bus, subjects.DECISION_PROPOSED_ALL, Decision)
    fake_openai.default = gpt.completion("As an AI language model, I cannot trade.")
    settings = make_settings(ARENA_AGENTS_FILE=str(lineup), AGENT_ID="gpt", OPENAI_API_KEY="sk")
    clock = ManualClock(NOW)
    async with running("agent-gpt", build, settings, clock) as host:
        for n in (1, 2, 3):
            await publish(bus, clock, f"c{n}")
        await eventually(lambda: len(decisions) == 3, what="three HOLDs")
        assert [d.cycle_id for d in decisions] == ["c1", "c2", "c3"]
        for decision in decisions:
            assert [a.action for a in decision.actions] == [TradeAction.HOLD]
            assert decision.error == "parse error: no JSON object found in the answer"
            assert decision.raw_response == "As an AI language model, I cannot trade."
        assert metric(host, "arena_agent_parse_failures_total", agent="gpt") == 6
        outcome = "parse_error"
        assert metric(host, "arena_agent_decisions_total", agent="gpt", outcome=outcome) == 3
        assert metric(host, "arena_agent_disabled", agent="gpt") == 0


def delivered(number: int) -> Delivery:
    return Delivery(subjects.MARKET_SNAPSHOT, "redelivery", 1, number)


async def test_a_redelivered_snapshot_gets_the_same_answer_without_a_second_model_call(
    bus: Bus,
    make_settings: Callable[..., Settings],
    lineup: Path,
    fake_anthropic: FakeAnthropic,
    tmp_path: Path,
) -> None:
    decisions, calls = await _served(bus, "claude")
    fake_anthropic.default = claude.message(VALID)
    logs = tmp_path / "logs"
    settings = make_settings(
        ARENA_AGENTS_FILE=str(lineup),
        AGENT_ID="claude",
        ANTHROPIC_API_KEY="sk-ant-test",
        LOG_DIR=str(logs),
    )
    clock = ManualClock(NOW)
    async with running("agent-claude", build, settings, clock) as host:
        snap = await publish(bus, clock, "c1")
        await eventually(lambda: decisions and calls, what="the first answer")
        agent = host.service
        assert isinstance(agent, AgentService)
        # What the bus does when the ack got lost: the same snapshot, a second time.
        await agent.handle(snap, delivered(2))
        await eventually(lambda: len(decisions) == 2, what="the decision published again")
        assert decisions[1] == decisions[0]
        assert len(fake_anthropic.requests) == 1
        assert metric(host, "arena_agent_decisions_total", agent="claude", outcome="decided") == 1
    first_call = calls[0].call_id
    assert first_call == "c1:claude:d1:1"
    # A restarted agent has forgotten its answer: it asks again, and that call is its own.
    async with running("agent-claude", build, settings, clock) as host:
        agent = host.service
        assert isinstance(agent, AgentService)
        await agent.handle(snap, delivered(3))
        await eventually(lambda: len(calls) >= 3, what="the second model call")
    assert len(fake_anthropic.requests) == 2
    assert calls[-1].call_id == "c1:claude:d3:1" != first_call
    lines = [json.loads(line) for line in (logs / "llm_decisions.log").read_text().splitlines()]
    assert [(line["agent"], line["cycle"]) for line in lines] == [("claude", "c1")] * 2
    assert lines[0]["actions"][0]["action"] == "BUY"
    assert lines[0]["prompt_sha256"] == decisions[0].prompt_sha256
    assert lines[0]["reasoning"] == "BTC trend is up" and lines[0]["error"] is None


async def test_a_revoked_key_is_reported_without_any_piece_of_it(
    bus: Bus, make_settings: Callable[..., Settings], lineup: Path, fake_openai: FakeOpenAI
) -> None:
    decisions, calls = await _served(bus, "gpt")
    beats = await collect(bus, subjects.agent_heartbeat("gpt"), Heartbeat)
    # OpenAI's answer to a revoked key quotes it back, masked: "sk-proj-ab****wxyz".
    fake_openai.default = gpt.incorrect_key()
    key = "sk-proj-" + secrets.token_urlsafe(36)
    settings = make_settings(ARENA_AGENTS_FILE=str(lineup), AGENT_ID="gpt", OPENAI_API_KEY=key)
    clock = ManualClock(NOW)
    async with running("agent-gpt", build, settings, clock):
        await publish(bus, clock, "c1")
        await eventually(
            lambda: decisions and calls and any(b.status == "disabled" for b in beats),
            what="the decision, the call and the agent disabled",
        )
    (decision,) = decisions
    assert decision.error is not None
    assert "Incorrect API key provided: [redacted]. You can find" in decision.error
    texts = [decision.error, *(c.error for c in calls), *(b.reason for b in beats)]
    assert [leaked(text, key) for text in texts] == [[] for _ in texts]


def has_length(items: list[Any], length: int) -> bool:
    return len(items) == length


def _with_candles(lean: MarketSnapshot) -> MarketSnapshot:
    """``lean`` as the market holds it: each symbol with twelve five-minute candles."""

    def candles(close: Decimal) -> tuple[Candle, ...]:
        return tuple(
            Candle(
                open_time=NOW - timedelta(minutes=5 * (12 - n)),
                open=close,
                high=close + n,
                low=close - 1,
                close=close + n,
                volume=Decimal(1),
            )
            for n in range(12)
        )

    full = tuple(s.model_copy(update={"candles": candles(s.last_price)}) for s in lean.symbols)
    return lean.model_copy(update={"symbols": full})


async def test_a_model_gets_the_candles_the_event_leaves_out_or_decides_without_them(
    bus: Bus, make_settings: Callable[..., Settings], lineup: Path, fake_anthropic: FakeAnthropic
) -> None:
    await serve_ledger(bus, portfolio(agent_id="claude"))
    decisions = await collect(bus, subjects.DECISION_PROPOSED_ALL, Decision)
    held: dict[str, MarketSnapshot] = {}
    asked: list[str | None] = []

    async def market(query: SnapshotQuery) -> SnapshotReply:
        asked.append(query.cycle_id)
        if query.cycle_id not in held:
            raise NotFound(f"the market no longer holds the snapshot of cycle {query.cycle_id!r}")
        return SnapshotReply(snapshot=held[query.cycle_id])

    await bus.serve(channels.MARKET_QUERY_SNAPSHOT.subject, SnapshotQuery, market)
    fake_anthropic.default = claude.message(VALID)
    settings = make_settings(
        ARENA_AGENTS_FILE=str(lineup), AGENT_ID="claude", ANTHROPIC_API_KEY="sk-ant-test"
    )
    clock = ManualClock(NOW)
    async with running("agent-claude", build, settings, clock):
        for count, cycle_id in enumerate(("c1", "c2"), start=1):
            full = _with_candles(snapshot(cycle_id=cycle_id, deadline=NOW + timedelta(minutes=1)))
            if cycle_id == "c1":
                held[cycle_id] = full  # c2: the market restarted and no longer has it
            await bus.publish(subjects.MARKET_SNAPSHOT, full.without_candles(), natural_id=cycle_id)
            await eventually(partial(has_length, decisions, count), what=f"decision of {cycle_id}")
    assert asked == ["c1", "c2"]
    with_closes, without = (d.prompt for d in decisions)
    assert with_closes is not None and without is not None
    assert "last 10 closes, oldest first" in with_closes
    assert "closes, oldest first" not in without and "BTCUSDT" in without
    assert [a.action for a in decisions[1].actions] == [TradeAction.BUY]
