"""The prompt: the real limits, the market, the account; deterministic and versioned."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from services.agent.prompt import PROMPT_VERSION, build_prompt
from services.agent.providers.base import Conversation
from services.common.contracts import Candle, Indicators, PositionSide
from services.common.settings import DEFAULT_SYMBOLS, TradingLimits
from tests.builders import NOW, portfolio, position, snapshot, symbol_snapshot


def candles(count: int) -> tuple[Candle, ...]:
    start = NOW - timedelta(minutes=5 * count)
    return tuple(
        Candle(
            open_time=start + timedelta(minutes=5 * n),
            open=Decimal(100 + n),
            high=Decimal(101 + n),
            low=Decimal(99 + n),
            close=Decimal(100 + n) + Decimal("0.5"),
            volume=Decimal(10),
        )
        for n in range(count)
    )


def test_the_system_part_states_the_configured_limits() -> None:
    limits = TradingLimits(max_margin_usd=Decimal(25), max_leverage=7, max_open_positions=2)
    prompt = build_prompt(snapshot(), portfolio(), limits, DEFAULT_SYMBOLS)
    assert "10 to 25 USD" in prompt.system
    assert "1x to 7x" in prompt.system
    assert "At most 2 open positions" in prompt.system
    assert "90%" in prompt.system and "0.05%" in prompt.system
    assert '"actions"' in prompt.system
    assert prompt.version == PROMPT_VERSION


def test_the_user_part_has_market_context_and_the_account() -> None:
    eth = symbol_snapshot("ETHUSDT", indicators=Indicators(rsi_14=61.234567, ema_20=3001.5))
    btc = symbol_snapshot("BTCUSDT").model_copy(update={"candles": candles(100)})
    held = position("ETHUSDT", side=PositionSide.SHORT).model_copy(
        update={"liquidation_price": Decimal(3300), "stop_loss": Decimal(3100)}
    )
    prompt = build_prompt(
        snapshot(btc, eth), portfolio(held, balance="80"), TradingLimits(), DEFAULT_SYMBOLS
    )
    user = prompt.user
    assert "## BTCUSDT" in user and "## ETHUSDT" in user
    assert "RSI14 61.2346" in user and "EMA50 n/a" in user
    assert "funding rate 0.0001" in user
    assert "last 10 closes, oldest first: 190.5, 191.5" in user
    # 4 h of five-minute candles: the last 48.
    assert "4h context: open 152, close 199.5" in user
    assert "balance 80 USD" in user
    assert "ETHUSDT SHORT 2x: entry 3000.00" in user
    assert "liquidation 3300, stop 3100, target none" in user


def test_the_same_inputs_give_the_same_prompt_and_hash() -> None:
    first = build_prompt(snapshot(), portfolio(), TradingLimits(), DEFAULT_SYMBOLS)
    again = build_prompt(snapshot(), portfolio(), TradingLimits(), DEFAULT_SYMBOLS)
    other = build_prompt(snapshot(cycle_id="c2"), portfolio(), TradingLimits(), DEFAULT_SYMBOLS)
    assert first == again and first.sha256 == again.sha256
    assert first.sha256 != other.sha256
    assert len(first.sha256) == 64


def test_a_first_question_is_named_by_the_prompt_hash_and_a_follow_up_is_not() -> None:
    prompt = build_prompt(snapshot(), portfolio(), TradingLimits(), DEFAULT_SYMBOLS)
    assert prompt.text == f"{prompt.system}\n\n---\n\n{prompt.user}"
    asked = Conversation.of(prompt)
    assert (asked.text, asked.sha256) == (prompt.text, prompt.sha256)
    again = asked.then("not JSON", "Answer with the JSON object only.")
    assert again.text.startswith(prompt.text) and again.sha256 != prompt.sha256
