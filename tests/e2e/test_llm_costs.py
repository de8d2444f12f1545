"""An LLM agent with a key and a reachable provider trades, and its tokens and cost reach
the books: market, risk, ledger and an OpenAI agent as processes, the provider a local
server speaking the Chat Completions wire format."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from services.common import channels
from services.common.bus import Bus, BusMetrics
from services.common.contracts import Leaderboard, LeaderboardQuery
from tests.e2e.processes import ServiceProcess
from tests.fakes.openai import FakeOpenAI, completion
from tests.support import eventually

pytestmark = pytest.mark.e2e

PROMPT_TOKENS, COMPLETION_TOKENS = 1100, 120
PRICE_IN, PRICE_OUT = Decimal("2.5"), Decimal(10)
COST_PER_CALL = (PROMPT_TOKENS * PRICE_IN + COMPLETION_TOKENS * PRICE_OUT) / Decimal(1_000_000)
ANSWER = (
    '```json\n{"reasoning": "BTC trend up, small long", "actions": [{"action": "BUY", '
    '"symbol": "BTCUSDT", "margin_usd": 20, "leverage": 5, "confidence": 0.6}]}\n```'
)


@pytest.fixture
def provider() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(
        completion(ANSWER, prompt_tokens=PROMPT_TOKENS, completion_tokens=COMPLETION_TOKENS)
    ).start()
    try:
        yield server
    finally:
        server.stop()


def _lineup(path: Path, base_url: str) -> Path:
    path.write_text(
        f"""
[[agents]]
id = "gpt"
display_name = "GPT under test"
provider = "openai"
model = "gpt-4o"
base_url = "{base_url}"
api_key_env = "ARENA_TEST_OPENAI_KEY"
price_input_per_mtok = "{PRICE_IN}"
price_output_per_mtok = "{PRICE_OUT}"
"""
    )
    return path


async def test_a_keyed_model_trades_and_its_cost_reaches_the_leaderboard(
    nats_url: str, database_url: str, tmp_path: Path, provider: FakeOpenAI
) -> None:
    env = {
        "NATS_URL": nats_url,
        "DATABASE_URL": database_url,
        "ARENA_AGENTS_FILE": str(_lineup(tmp_path / "agents.toml", provider.base_url)),
        "ARENA_TEST_OPENAI_KEY": "sk-test",
        "ARENA_CYCLE_SECONDS": "2",
        "ARENA_DECISION_SECONDS": "1.5",
        "MARKET_SOURCE": "simulator",
        "METRICS_PORT": "0",
    }
    procs = [
        ServiceProcess("ledger", "ledger", env, tmp_path),
        ServiceProcess("risk", "risk", env, tmp_path),
        ServiceProcess("agent-gpt", "agent", {**env, "AGENT_ID": "gpt"}, tmp_path),
        ServiceProcess("market", "market", env, tmp_path),
    ]
    bus = await Bus.connect(nats_url, "cost-test", BusMetrics(CollectorRegistry()))
    conn = await asyncpg.connect(database_url)
    try:
        for proc in procs:
            proc.start()
            await proc.wait_started()

        async def decided() -> int:
            return int(await conn.fetchval("SELECT count(*) FROM decisions WHERE llm_id = 'gpt'"))

        await eventually(lambda: _at_least(decided, 2), timeout=60, what="two LLM decisions")

        opened = await conn.fetchrow(
            "SELECT symbol, side, leverage, margin FROM positions WHERE llm_id = 'gpt'"
        )
        assert opened is not None, "the model's BUY was not executed"
        assert (opened["symbol"], opened["side"], opened["leverage"]) == ("BTCUSDT", "LONG", 5)
        assert opened["margin"] == Decimal(20)

        calls = await conn.fetch(
            "SELECT prompt_tokens, completion_tokens, estimated_cost, success "
            "FROM llm_api_calls WHERE llm_id = 'gpt'"
        )
        assert calls, "no LLM call was recorded"
        for call in calls:
            assert (call["prompt_tokens"], call["completion_tokens"], call["success"]) == (
                PROMPT_TOKENS,
                COMPLETION_TOKENS,
                True,
            )
            assert call["estimated_cost"] == COST_PER_CALL

        count = "SELECT count(*) FROM llm_api_calls WHERE llm_id = 'gpt'"
        before = int(await conn.fetchval(count))
        board = await bus.request(
            channels.LEDGER_QUERY_LEADERBOARD.subject, LeaderboardQuery(), Leaderboard, timeout=5
        )
        after = int(await conn.fetchval(count))
        (entry,) = board.entries
        # The agent goes on deciding: the leaderboard counts the calls recorded when it read.
        assert entry.llm_cost_usd in {COST_PER_CALL * n for n in range(before, after + 1)}
        assert entry.parse_failures == 0
        assert len(provider.requests) >= after
    finally:
        await conn.close()
        await bus.close()
        codes = {proc.name: proc.stop() for proc in reversed(procs)}
    assert codes == dict.fromkeys(codes, 0)


async def _at_least(count: Callable[[], Awaitable[int]], minimum: int) -> bool:
    return await count() >= minimum
