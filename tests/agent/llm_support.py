"""Shared pieces of the LLM agent tests: specs pointed at the local fakes, valid answers."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from services.common.lineup import AgentSpec
from services.common.settings import Settings

VALID = json.dumps(
    {
        "reasoning": "BTC trend is up",
        "actions": [
            {
                "action": "BUY",
                "symbol": "BTCUSDT",
                "margin_usd": 20,
                "leverage": 3,
                "stop_loss": 49000,
                "take_profit": 52000,
            }
        ],
    }
)
# No run of this many characters of a key's random part may be kept in any text.
WINDOW = 5
KEYS = {
    "ANTHROPIC_API_KEY": "sk-ant-test",
    "OPENAI_API_KEY": "sk-test",
    "DEEPSEEK_API_KEY": "sk-ds",
}


def llm_spec(provider: str, base_url: str, **overrides: Any) -> AgentSpec:
    values: dict[str, Any] = {
        "id": "claude" if provider == "anthropic" else "gpt",
        "display_name": provider,
        "provider": provider,
        "model": "model-test",
        "base_url": base_url,
        "timeout_seconds": 5,
        "max_retries": 2,
        "retry_backoff_seconds": 0,
        "price_input_per_mtok": Decimal(3),
        "price_output_per_mtok": Decimal(15),
    }
    values.update(overrides)
    return AgentSpec(**values)


def keyed_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {**KEYS, **overrides}
    return Settings(_env_file=None, **values)


def leaked(text: str | None, key: str) -> list[str]:
    """Runs of WINDOW characters of the key's random part in ``text``, and its last four
    (what a masked key shows)."""
    own = key.removeprefix("sk-proj-").removeprefix("sk-ant-api03-").removeprefix("sk-")
    pieces = {own[i : i + WINDOW] for i in range(len(own) - WINDOW + 1)} | {key[-4:]}
    return sorted(p for p in pieces if p in (text or ""))
