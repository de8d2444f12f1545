"""Provider errors are stored, logged and shown without any piece of an API key."""

from __future__ import annotations

import logging
import secrets
from typing import Any, NamedTuple

import pytest

from services.agent.factory import build_trader
from services.agent.llm import LlmTrader
from services.agent.scrub import REDACTED, Scrubber
from services.agent.trader import Outcome
from services.common.clock import ManualClock
from services.common.lineup import AgentSpec
from tests.agent.llm_support import keyed_settings, leaked, llm_spec
from tests.builders import NOW, portfolio, snapshot
from tests.fakes import anthropic as claude
from tests.fakes import openai as gpt
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.openai import FakeOpenAI
from tests.fakes.scripted_http import Recorded, Reply

# ---------------------------------------------------------------- the scrubber


def test_masked_and_key_shaped_values_are_removed() -> None:
    scrub = Scrubber()
    cases = {
        "Incorrect API key provided: sk-proj-ab****wxyz. You can find your API key at "
        "https://platform.openai.com/account/api-keys.": "Incorrect API key provided: "
        f"{REDACTED}. You can find your API key at https://platform.openai.com/account/api-keys.",
        "Authentication Fails, Your api key: ****wxyz is invalid": "Authentication Fails, "
        f"Your api key: {REDACTED} is invalid",
        "key sk-ant-api03-AbCdEf_123-xyz rejected": f"key {REDACTED} rejected",
        "key sk-or-v1-0123456789abcdef rejected": f"key {REDACTED} rejected",
        "got Authorization: Bearer eyJhbGciOi.J9.sig": f"got Authorization: Bearer {REDACTED}",
        "x-api-key=abc123def456": f"x-api-key={REDACTED}",
        '{"api_key": "local-secret-1"}': f'{{"api_key": "{REDACTED}"}}',
    }
    for text, scrubbed in cases.items():
        assert scrub(text) == scrubbed


@pytest.mark.parametrize(
    "text",
    [
        "HTTP 529: overloaded_error",
        "HTTP 400: max_tokens is too large: 9000 > 8192",
        "connection failed: [Errno 111] Connect call failed ('127.0.0.1', 1)",
        "the 4h trend * RSI 58, invalid_api_key",
        "no answer within 5.0s",
        "tokens: 5000 in, 200 out",
        f"already {REDACTED}",
    ],
)
def test_ordinary_error_text_is_kept(text: str) -> None:
    assert Scrubber(["sk-proj-" + secrets.token_urlsafe(30)])(text) == text


def test_configured_secrets_and_their_fragments_are_removed_whatever_their_shape() -> None:
    secret = "local-" + secrets.token_urlsafe(24)
    scrub = Scrubber([secret, "not-set", None])
    assert scrub(f"token {secret} refused") == f"token {REDACTED} refused"
    assert scrub(f"token {secret[3:17]}... refused") == f"token {REDACTED}... refused"
    assert scrub(f"quoted {secret[-9:]}") == f"quoted {REDACTED}"
    # Too short to be a secret worth redacting everywhere it appears.
    assert scrub("not-set") == "not-set"


# ---------------------------------------------------------------- through the real SDKs


def echo_fragment(status: int) -> Reply:
    """An error quoting the first half of the key it got, as a proxy in front might."""

    def body(request: Recorded) -> dict[str, Any]:
        key = gpt.sent_key(request)
        return {"error": {"message": f"upstream refused {key[: len(key) // 2]}", "type": "x"}}

    return Reply(status, body)


def trader(spec: AgentSpec, key_env: str, key: str, environ: dict[str, str]) -> LlmTrader:
    settings = (
        keyed_settings(**{key_env: key}) if key_env.endswith("_API_KEY") else keyed_settings()
    )
    built = build_trader(spec, settings, ManualClock(NOW), environ)
    assert isinstance(built, LlmTrader)
    return built


class Case(NamedTuple):
    provider: str
    key_env: str
    prefix: str
    reply: Reply
    auth: bool  # a refused key (the agent is disabled), else a retried server error


CASES = {
    "openai-401-masked": Case("openai", "OPENAI_API_KEY", "sk-proj-", gpt.incorrect_key(), True),
    "deepseek-401-last-four": Case(
        "deepseek", "DEEPSEEK_API_KEY", "sk-", gpt.deepseek_incorrect_key(), True
    ),
    "anthropic-401-bearer-echo": Case(
        "anthropic", "ANTHROPIC_API_KEY", "sk-ant-api03-", claude.credentials_echo(401), True
    ),
    "local-500-fragment-echo": Case(
        "openai-compatible", "LOCAL_LLM_KEY", "", echo_fragment(500), False
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_a_refused_key_leaves_no_fragment_in_decision_calls_reason_or_logs(
    case: Case,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = case.prefix + secrets.token_urlsafe(30)
    server = fake_anthropic if case.provider == "anthropic" else fake_openai
    server.default = case.reply
    spec = llm_spec(case.provider, server.base_url, api_key_env=case.key_env, max_retries=1)
    t = trader(spec, case.key_env, key, {case.key_env: key})
    caplog.set_level(logging.DEBUG)
    try:
        answer = await t.decide(snapshot(cycle_id="c1"), portfolio())
    finally:
        await t.close()
    # The key went out, and the fake quoted it back: there was something to scrub.
    headers = server.requests[0].headers
    assert (headers.get("x-api-key") or gpt.sent_key(server.requests[0])) == key
    assert answer.outcome == Outcome.PROVIDER_ERROR
    assert answer.error is not None and REDACTED in answer.error
    texts = [answer.error, t.disabled_reason, *(c.error for c in answer.calls)]
    texts += [record.getMessage() for record in caplog.records]
    assert [leaked(text, key) for text in texts] == [[] for _ in texts]
    if case.auth:
        assert answer.error.startswith("provider error: HTTP 401")
        assert t.disabled_reason is not None and "rejected the API key" in t.disabled_reason
    else:
        assert [c.status_code for c in answer.calls] == [500, 500], "retried, each scrubbed"
