"""Building the messages the ledger consumes, from the shared contracts."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from services.common.contracts import (
    Action,
    ActionResult,
    CycleStarted,
    Decision,
    Indicators,
    MarketSnapshot,
    MarketTick,
    Reason,
    SymbolSnapshot,
    TickPrice,
    TradeAction,
    Verdict,
)


def cycle_started(
    cycle_id: str, sequence: int, at: datetime, agents: tuple[str, ...], deadline_s: float = 60
) -> CycleStarted:
    return CycleStarted(
        cycle_id=cycle_id,
        sequence=sequence,
        started_at=at,
        decision_deadline=at + timedelta(seconds=deadline_s),
        symbols=("BTCUSDT", "ETHUSDT"),
        agents=agents,
    )


def snapshot(
    cycle_id: str,
    at: datetime,
    prices: dict[str, Decimal],
    marks: dict[str, Decimal] | None = None,
) -> MarketSnapshot:
    """Last prices ``prices``; mark prices the same unless ``marks`` says otherwise."""
    marks = marks or {}
    return MarketSnapshot(
        cycle_id=cycle_id,
        taken_at=at,
        decision_deadline=at + timedelta(seconds=60),
        source="test",
        symbols=tuple(
            SymbolSnapshot(
                symbol=symbol,
                last_price=price,
                mark_price=marks.get(symbol, price),
                price_change_pct_24h=Decimal("1.5"),
                volume_24h=Decimal(1000),
                high_24h=price + 10,
                low_24h=price - 10,
                funding_rate=Decimal("0.0001"),
                next_funding_time=at + timedelta(hours=8),
                candles=(),
                indicators=Indicators(),
            )
            for symbol, price in prices.items()
        ),
    )


def tick(tick_id: str, at: datetime, marks: dict[str, Decimal]) -> MarketTick:
    return MarketTick(
        tick_id=tick_id,
        at=at,
        prices=tuple(
            TickPrice(symbol=s, last_price=p, mark_price=p, high=p, low=p) for s, p in marks.items()
        ),
    )


def buy(symbol: str, margin: int, leverage: int) -> Action:
    return Action(
        action=TradeAction.BUY,
        symbol=symbol,
        margin_usd=Decimal(margin),
        leverage=leverage,
        confidence=0.7,
    )


def sell(symbol: str, margin: int, leverage: int) -> Action:
    return Action(
        action=TradeAction.SELL,
        symbol=symbol,
        margin_usd=Decimal(margin),
        leverage=leverage,
        confidence=0.6,
    )


def close(symbol: str) -> Action:
    return Action(action=TradeAction.CLOSE, symbol=symbol)


def hold() -> Action:
    return Action(action=TradeAction.HOLD)


def approved(action: Action) -> tuple[Action, tuple[Reason, ...]]:
    return action, ()


def rejected(action: Action, *reasons: tuple[str, str]) -> tuple[Action, tuple[Reason, ...]]:
    return action, tuple(Reason(code=c, message=m) for c, m in reasons)


def verdict(
    cycle_id: str,
    agent: str,
    at: datetime,
    *results: tuple[Action, tuple[Reason, ...]],
    reasoning: str = "because",
) -> Verdict:
    actions = tuple(action for action, _ in results)
    decision = Decision(
        decision_id=Decision.make_id(cycle_id, agent),
        cycle_id=cycle_id,
        agent_id=agent,
        decided_at=at,
        decision_deadline=at + timedelta(seconds=60),
        actions=actions,
        reasoning=reasoning,
        model="test-model",
    )
    return Verdict(
        verdict_id=decision.decision_id,
        decided_at=at,
        decision=decision,
        results=tuple(
            ActionResult(index=i, action=action, approved=not reasons, reasons=reasons)
            for i, (action, reasons) in enumerate(results)
        ),
    )
