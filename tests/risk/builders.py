"""Small builders of portfolios and decisions for the risk tests."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from services.common.contracts import (
    AccountView,
    Action,
    Decision,
    Portfolio,
    PositionSide,
    PositionStatus,
    PositionView,
    TradeAction,
)

NOW = datetime(2025, 1, 1, 12, tzinfo=UTC)


def account(
    agent_id: str = "momentum",
    balance: Decimal | str = "100",
    unrealized: Decimal | str = "0",
    margin_used: Decimal | str = "0",
) -> AccountView:
    balance, unrealized, margin_used = Decimal(balance), Decimal(unrealized), Decimal(margin_used)
    return AccountView(
        agent_id=agent_id,
        display_name=agent_id,
        provider="baseline",
        model_name="ema-cross",
        balance=balance,
        margin_used=margin_used,
        equity=balance + margin_used + unrealized,
        total_pnl=Decimal(0),
        realized_pnl=Decimal(0),
        unrealized_pnl=unrealized,
        total_fees=Decimal(0),
        total_trades=0,
        winning_trades=0,
        losing_trades=0,
        open_positions=0,
        is_active=True,
    )


def position(
    symbol: str, agent_id: str = "momentum", side: PositionSide = PositionSide.LONG
) -> PositionView:
    return PositionView(
        position_id=f"{agent_id}-{symbol}",
        agent_id=agent_id,
        symbol=symbol,
        side=side,
        status=PositionStatus.OPEN,
        entry_price=Decimal(100),
        current_price=Decimal(100),
        quantity=Decimal(1),
        leverage=2,
        margin=Decimal(20),
        unrealized_pnl=Decimal(0),
        opened_at=NOW,
    )


def portfolio(
    *open_symbols: str,
    balance: Decimal | str = "100",
    agent_id: str = "momentum",
    unrealized: Decimal | str = "0",
    margin_used: Decimal | str = "0",
) -> Portfolio:
    """``unrealized`` lifts equity above the balance without using margin."""
    return Portfolio(
        account=account(agent_id, balance, unrealized, margin_used),
        positions=tuple(position(s, agent_id) for s in open_symbols),
    )


def buy(
    symbol: str = "BTCUSDT", margin: Decimal | str | None = "20", leverage: int | None = 5
) -> Action:
    return Action(
        action=TradeAction.BUY,
        symbol=symbol,
        margin_usd=None if margin is None else Decimal(margin),
        leverage=leverage,
    )


def sell(symbol: str = "BTCUSDT", margin: str = "20", leverage: int = 5) -> Action:
    return Action(
        action=TradeAction.SELL, symbol=symbol, margin_usd=Decimal(margin), leverage=leverage
    )


def close(symbol: str | None = "BTCUSDT") -> Action:
    return Action(action=TradeAction.CLOSE, symbol=symbol)


def hold(symbol: str | None = None) -> Action:
    return Action(action=TradeAction.HOLD, symbol=symbol)


def decision(*actions: Action, agent_id: str = "momentum", cycle_id: str = "c1") -> Decision:
    return Decision(
        decision_id=Decision.make_id(cycle_id, agent_id),
        cycle_id=cycle_id,
        agent_id=agent_id,
        decided_at=NOW,
        decision_deadline=NOW,
        actions=actions,
        reasoning="because",
        model="ema-cross",
    )
