"""The ``llm_decision`` WebSocket event: what the dashboard shows, not the decision's audit."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from prometheus_client import CollectorRegistry

from services.agent.parsing import parse_answer
from services.agent.prompt import build_prompt
from services.common.clock import ManualClock
from services.common.contracts import Candle, Decision, Indicators, Usage
from services.common.settings import DEFAULT_SYMBOLS, TradingLimits
from services.gateway.hub import Hub
from services.gateway.metrics import GatewayMetrics
from services.gateway.protocol import DecisionShown, EventType
from tests.agent.corpus import load_cases
from tests.builders import NOW, PRICES, decision, portfolio, position, snapshot, symbol_snapshot
from tests.gateway.standins import DECISION_SHOWN

AUDIT = ("prompt", "raw_response", "thinking", "portfolio")


def llm_decision() -> Decision:
    """A model's decision as an LLM agent publishes it: full prompt (every symbol with its
    candles, two open positions), the raw answer with its thinking, and the portfolio."""
    indicators = Indicators(rsi_14=52.3, ema_20=1.0, ema_50=1.0, macd=0.1, atr_14=0.01)

    def candles(p: Decimal) -> tuple[Candle, ...]:  # flat, 5-minute, the last 100
        at = (NOW - timedelta(minutes=5 * n) for n in range(100, 0, -1))
        return tuple(Candle(open_time=t, open=p, high=p, low=p, close=p, volume=1) for t in at)

    market = snapshot(
        *(
            symbol_snapshot(s, indicators=indicators).model_copy(update={"candles": candles(p)})
            for s, p in PRICES.items()
        )
    )
    book = portfolio(position("BTCUSDT"), position("ETHUSDT"))
    prompt = build_prompt(market, book, TradingLimits(), DEFAULT_SYMBOLS)
    raw = next(c.output for c in load_cases() if c.thinking and c.actions)
    answer = parse_answer(raw)
    decided = decision(*answer.actions, agent_id="gpt", reasoning=answer.reasoning, model="gpt")
    audit = {
        "prompt_sha256": prompt.sha256,
        "prompt_version": prompt.version,
        "prompt": prompt.text,
        "raw_response": raw,
        "thinking": answer.thinking,
        "portfolio": book,
        "usage": Usage(prompt_tokens=2400, completion_tokens=180, cost_usd=Decimal("0.00047")),
    }
    return Decision.model_validate({**dict(decided), **audit})


def event_sizes(decision: Decision) -> tuple[int, int]:
    """Bytes of the ``llm_decision`` message carrying the whole decision, and as sent."""
    hub = Hub(ManualClock(NOW), GatewayMetrics(CollectorRegistry()))
    whole = hub.envelope(EventType.LLM_DECISION, decision)
    shown = hub.envelope(EventType.LLM_DECISION, DecisionShown.of(decision))
    return len(whole.encode()), len(shown.encode())


def test_the_event_carries_what_the_dashboard_shows_and_none_of_the_audit() -> None:
    decision = llm_decision()
    data = DecisionShown.of(decision).model_dump(mode="json")
    assert set(data) == DECISION_SHOWN
    assert data == decision.model_dump(mode="json", include=set(DECISION_SHOWN))
    assert all(getattr(decision, field) for field in AUDIT)  # the decision had them all


def test_the_event_is_a_fraction_of_the_whole_decision() -> None:
    whole, shown = event_sizes(llm_decision())
    assert shown * 5 < whole, (whole, shown)
