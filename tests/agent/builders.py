"""Small builders of snapshots and portfolios for the agent tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from services.common.contracts import (
    AccountView,
    Indicators,
    MarketSnapshot,
    Portfolio,
    PositionSide,
    PositionStatus,
    PositionView,
    SymbolSnapshot,
)

NOW = datetime(2025, 1, 1, 12, tzinfo=UTC)
PRICES = {
    "BTCUSDT": Decimal("50000.0"),
    "ETHUSDT": Decimal("3000.00"),
    "SOLUSDT": Decimal("150.000"),
    "BNBUSDT": Decimal("600.000"),
    "XRPUSDT": Decimal("0.5000"),
    "DOGEUSDT": Decimal("0.080000"),
}


def symbol_snapshot(
    symbol: str, price: Decimal | None = None, indicators: Indicators | None = None
) -> SymbolSnapshot:
    price = PRICES[symbol] if price is None else price
    return SymbolSnapshot(
        symbol=symbol,
        last_price=price,
        mark_price=price,
        price_change_pct_24h=Decimal(0),
        volume_24h=Decimal(1000),
        high_24h=price,
        low_24h=price,
        funding_rate=Decimal("0.0001"),
        next_funding_time=NOW + timedelta(hours=4),
        candles=(),
        indicators=indicators or Indicators(),
    )


def snapshot(
    *symbols: SymbolSnapshot,
    cycle_id: str = "c1",
    deadline: datetime | None = None,
) -> MarketSnapshot:
    return MarketSnapshot(
        cycle_id=cycle_id,
        taken_at=NOW,
        decision_deadline=deadline or NOW + timedelta(minutes=4),
        source="simulator",
        symbols=symbols or tuple(symbol_snapshot(s) for s in PRICES),
    )


def position(
    symbol: str, side: PositionSide = PositionSide.LONG, agent_id: str = "momentum"
) -> PositionView:
    return PositionView(
        position_id=f"{agent_id}-{symbol}",
        agent_id=agent_id,
        symbol=symbol,
        side=side,
        status=PositionStatus.OPEN,
        entry_price=PRICES[symbol],
        current_price=PRICES[symbol],
        quantity=Decimal(1),
        leverage=2,
        margin=Decimal(20),
        unrealized_pnl=Decimal(0),
        opened_at=NOW,
    )


def portfolio(
    *positions: PositionView,
    balance: Decimal | str = "100",
    agent_id: str = "momentum",
    total_trades: int = 0,
) -> Portfolio:
    balance = Decimal(balance)
    return Portfolio(
        account=AccountView(
            agent_id=agent_id,
            display_name=agent_id,
            provider="baseline",
            model_name="ema-cross",
            balance=balance,
            margin_used=sum((p.margin for p in positions), Decimal(0)),
            equity=balance,
            total_pnl=Decimal(0),
            realized_pnl=Decimal(0),
            unrealized_pnl=Decimal(0),
            total_fees=Decimal(0),
            total_trades=total_trades,
            winning_trades=0,
            losing_trades=0,
            open_positions=len(positions),
            is_active=True,
        ),
        positions=positions,
    )
