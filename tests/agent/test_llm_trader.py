"""An LLM trader through the real SDKs against local servers speaking the providers' formats."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from services.agent.factory import build_trader
from services.agent.llm import LlmTrader
from services.agent.trader import DisabledTrader, Outcome, TraderAnswer
from services.common.clock import ManualClock
from services.common.contracts import TradeAction
from services.common.lineup import AgentSpec
from tests.agent.llm_support import VALID, keyed_settings, llm_spec
from tests.builders import NOW, portfolio, snapshot
from tests.fakes import anthropic as claude
from tests.fakes import openai as gpt
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.openai import FakeOpenAI


def trader(spec: AgentSpec, clock: ManualClock | None = None) -> LlmTrader:
    built = build_trader(spec, keyed_settings(), clock or ManualClock(NOW), {})
    assert isinstance(built, LlmTrader)
    return built


async def ask(t: LlmTrader, cycle_id: str = "c1") -> TraderAnswer:
    try:
        return await t.decide(snapshot(cycle_id=cycle_id), portfolio())
    finally:
        await t.close()


def buys_btc(answer: TraderAnswer) -> bool:
    return [(a.action, a.symbol) for a in answer.actions] == [(TradeAction.BUY, "BTCUSDT")]


# ---------------------------------------------------------------- anthropic


@pytest.mark.parametrize(
    "text",
    [
        VALID,
        f"```json\n{VALID}\n```",
        f"Here is my decision.\n{VALID}\nGood luck!",
        f"<think>EMA20 above EMA50, go long</think>\n{VALID}",
    ],
    ids=["json", "fenced", "prose", "think"],
)
async def test_anthropic_answers_become_decisions(fake_anthropic: FakeAnthropic, text: str) -> None:
    fake_anthropic.then(claude.message(text, input_tokens=2000, output_tokens=300))
    answer = await ask(trader(llm_spec("anthropic", fake_anthropic.base_url)))
    assert answer.outcome == Outcome.DECIDED and answer.error is None
    assert buys_btc(answer)
    assert answer.reasoning == "BTC trend is up"
    assert answer.raw_response == text
    (call,) = answer.calls
    assert (call.provider, call.prompt_tokens, call.completion_tokens) == ("anthropic", 2000, 300)
    # 2000 * 3 / 1e6 + 300 * 15 / 1e6
    assert call.estimated_cost == Decimal("0.0105")
    assert call.success and call.status_code == 200
    assert answer.usage is not None and answer.usage.cost_usd == Decimal("0.0105")
    assert answer.prompt is not None and answer.prompt.version == "v1"
    (request,) = fake_anthropic.requests
    assert request.path == "/v1/messages"
    # This SDK version sends the key as a bearer token; older ones used x-api-key.
    sent = request.headers.get("x-api-key") or request.headers.get("authorization", "")
    assert sent.endswith("sk-ant-test")
    assert request.body["model"] == "model-test"
    assert request.body["system"] == answer.prompt.system
    assert request.body["messages"] == [{"role": "user", "content": answer.prompt.user}]
    if text.startswith("<think>"):
        assert answer.thinking == "EMA20 above EMA50, go long"


async def test_garbage_is_asked_again_once_then_becomes_a_parse_error_hold(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.then(claude.message("I cannot help with trading."), claude.message("Still no."))
    answer = await ask(trader(llm_spec("anthropic", fake_anthropic.base_url)))
    assert answer.outcome == Outcome.PARSE_ERROR
    assert [a.action for a in answer.actions] == [TradeAction.HOLD]
    assert answer.error == "parse error: no JSON object found in the answer"
    assert answer.parse_failures == 2 and len(answer.calls) == 2
    second = fake_anthropic.requests[1].body["messages"]
    assert [m["role"] for m in second] == ["user", "assistant", "user"]
    assert "could not be used: no JSON object found" in second[2]["content"]


async def test_the_second_chance_can_succeed(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.then(claude.message(""), claude.message(VALID))
    answer = await ask(trader(llm_spec("anthropic", fake_anthropic.base_url)))
    assert answer.outcome == Outcome.DECIDED and buys_btc(answer)
    assert answer.parse_failures == 1


async def test_a_symbol_that_is_no_ticker_is_asked_again_naming_it(
    fake_anthropic: FakeAnthropic,
) -> None:
    hostile = VALID.replace('"BTCUSDT"', '"BTC<script>window.pwned=1</script>"')
    fake_anthropic.then(claude.message(hostile), claude.message(VALID.replace("BTCUSDT", "btc")))
    answer = await ask(trader(llm_spec("anthropic", fake_anthropic.base_url)))
    assert answer.outcome == Outcome.DECIDED and buys_btc(answer)
    reask = fake_anthropic.requests[1].body["messages"][2]["content"]
    assert "symbol 'BTC<script>window.pwned=1</script>' is not a ticker" in reask


async def test_no_second_chance_when_configured_off(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.then(claude.message(""))
    spec = llm_spec("anthropic", fake_anthropic.base_url, reask_on_parse_error=False)
    answer = await ask(trader(spec))
    assert answer.error == "parse error: empty answer: expected one JSON object with 'actions'"
    assert len(fake_anthropic.requests) == 1


async def test_429_then_success_is_retried(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.then(claude.error(429), claude.message(VALID))
    answer = await ask(trader(llm_spec("anthropic", fake_anthropic.base_url)))
    assert buys_btc(answer)
    assert [(c.attempt, c.success, c.status_code) for c in answer.calls] == [
        (1, False, 429),
        (2, True, 200),
    ]
    assert answer.calls[0].error is not None and "rate_limit_error" in answer.calls[0].error


async def test_529_overloaded_is_retried_until_the_retries_run_out(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.default = claude.error(529)
    answer = await ask(trader(llm_spec("anthropic", fake_anthropic.base_url, max_retries=2)))
    assert answer.outcome == Outcome.PROVIDER_ERROR
    assert answer.error is not None and answer.error.startswith("provider error: HTTP 529")
    assert len(fake_anthropic.requests) == 3
    assert [c.status_code for c in answer.calls] == [529, 529, 529]


async def test_401_disables_the_agent_without_retrying(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.default = claude.error(401, "invalid x-api-key")
    t = trader(llm_spec("anthropic", fake_anthropic.base_url))
    first = await t.decide(snapshot(cycle_id="c1"), portfolio())
    assert first.error is not None and "HTTP 401" in first.error
    assert len(fake_anthropic.requests) == 1
    assert t.disabled_reason is not None and "rejected the API key" in t.disabled_reason
    second = await ask(t, "c2")
    assert second.outcome == Outcome.DISABLED and second.calls == ()
    assert second.error is not None and second.error.startswith("disabled: anthropic rejected")
    assert len(fake_anthropic.requests) == 1, "a disabled agent calls nobody"


async def test_a_timeout_is_a_hold_within_the_agent_timeout(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.then(claude.message(VALID).__class__(200, {}, delay=10))
    answer = await ask(trader(llm_spec("anthropic", fake_anthropic.base_url, timeout_seconds=0.3)))
    assert answer.outcome == Outcome.PROVIDER_ERROR
    assert answer.error == "provider error: no answer within 0.3s"
    (call,) = answer.calls
    assert not call.success and call.response_time_ms < 5000


async def test_the_deadline_bounds_the_timeout(fake_anthropic: FakeAnthropic) -> None:
    clock = ManualClock(NOW)
    t = trader(llm_spec("anthropic", fake_anthropic.base_url), clock)
    late = snapshot(cycle_id="c1", deadline=NOW + timedelta(seconds=0.2))
    answer = await t.decide(late, portfolio())
    await t.close()
    assert answer.error == "provider error: the decision deadline came before an answer"
    assert fake_anthropic.requests == []


# ---------------------------------------------------------------- openai / deepseek


async def test_openai_answer_and_usage(fake_openai: FakeOpenAI) -> None:
    fake_openai.then(gpt.completion(VALID, prompt_tokens=1000, completion_tokens=100))
    spec = llm_spec("openai", fake_openai.base_url, json_schema=True)
    answer = await ask(trader(spec))
    assert buys_btc(answer)
    (call,) = answer.calls
    assert (call.provider, call.prompt_tokens, call.completion_tokens) == ("openai", 1000, 100)
    (request,) = fake_openai.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.body["response_format"]["type"] == "json_schema"
    assert [m["role"] for m in request.body["messages"]] == ["system", "user"]


async def test_deepseek_reasoning_is_kept(fake_openai: FakeOpenAI) -> None:
    fake_openai.then(gpt.completion(VALID, reasoning_content="RSI is 58, trend up"))
    answer = await ask(trader(llm_spec("deepseek", fake_openai.base_url)))
    assert buys_btc(answer)
    assert answer.thinking == "RSI is 58, trend up"
    assert fake_openai.requests[0].headers["authorization"] == "Bearer sk-ds"
    assert "response_format" not in fake_openai.requests[0].body


async def test_an_empty_openai_answer_is_a_parse_error(fake_openai: FakeOpenAI) -> None:
    fake_openai.default = gpt.completion(None)
    answer = await ask(trader(llm_spec("openai", fake_openai.base_url)))
    assert answer.outcome == Outcome.PARSE_ERROR
    assert answer.error is not None and "empty answer" in answer.error


async def test_a_500_that_never_recovers_opens_the_circuit(fake_openai: FakeOpenAI) -> None:
    fake_openai.default = gpt.error(500)
    clock = ManualClock(NOW)
    spec = llm_spec(
        "openai", fake_openai.base_url, max_retries=1, circuit_failures=2, circuit_reset_seconds=60
    )
    t = trader(spec, clock)
    for n in (1, 2):
        answer = await t.decide(snapshot(cycle_id=f"c{n}"), portfolio())
        assert answer.outcome == Outcome.PROVIDER_ERROR
        assert answer.error is not None and "HTTP 500" in answer.error
    assert len(fake_openai.requests) == 4
    reason = t.disabled_reason
    assert reason is not None and reason.startswith("circuit open after 2 failed cycles")
    held = await t.decide(snapshot(cycle_id="c3"), portfolio())
    assert held.outcome == Outcome.DISABLED and len(fake_openai.requests) == 4
    clock.advance(61)
    assert t.disabled_reason is None, "half-open after the reset time"
    fake_openai.then(gpt.completion(VALID))
    assert buys_btc(await ask(t, "c4"))
    assert t.disabled_reason is None


async def test_400_is_not_retried(fake_openai: FakeOpenAI) -> None:
    fake_openai.default = gpt.error(400, "max_tokens is too large")
    t = trader(llm_spec("openai", fake_openai.base_url))
    answer = await ask(t)
    assert answer.error is not None and "max_tokens is too large" in answer.error
    assert len(fake_openai.requests) == 1
    assert t.disabled_reason is None


def test_a_missing_key_disables_the_agent_with_the_reason() -> None:
    from services.common.settings import Settings

    spec = llm_spec("openai", "http://127.0.0.1:1/v1", api_key_env="OPENAI_API_KEY")
    built = build_trader(spec, Settings(_env_file=None), ManualClock(NOW), {})
    assert isinstance(built, DisabledTrader)
    assert built.disabled_reason == "OPENAI_API_KEY is not set"
    custom = llm_spec("openai-compatible", "http://127.0.0.1:1/v1", api_key_env="OPENROUTER_KEY")
    assert build_trader(custom, Settings(_env_file=None), ManualClock(NOW), {}).disabled_reason
    keyed = build_trader(
        custom, Settings(_env_file=None), ManualClock(NOW), {"OPENROUTER_KEY": "k"}
    )
    assert keyed.disabled_reason is None
