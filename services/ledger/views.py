"""Rows to wire views (the shapes events and query replies carry)."""

from __future__ import annotations

from services.common.contracts import AccountView, PositionView
from services.ledger.sql.accounts import AccountRow
from services.ledger.sql.positions import PositionRow


def account_view(row: AccountRow) -> AccountView:
    book = row.book
    return AccountView(
        agent_id=row.agent_id,
        display_name=row.display_name,
        provider=row.provider,
        model_name=row.model_name,
        balance=row.balance,
        margin_used=row.margin_used,
        equity=book.equity,
        total_pnl=row.total_pnl,
        realized_pnl=row.realized_pnl,
        unrealized_pnl=row.unrealized_pnl,
        total_fees=row.total_fees,
        total_trades=row.total_trades,
        winning_trades=row.winning_trades,
        losing_trades=row.losing_trades,
        open_positions=row.open_positions,
        is_active=row.is_active,
    )


def position_view(row: PositionRow) -> PositionView:
    return PositionView(
        position_id=str(row.id),
        agent_id=row.agent_id,
        symbol=row.symbol,
        side=row.side,
        status=row.status,
        entry_price=row.entry_price,
        current_price=row.current_price,
        quantity=row.quantity,
        leverage=row.leverage,
        margin=row.margin,
        unrealized_pnl=row.unrealized_pnl,
        liquidation_price=row.liquidation_price,
        stop_loss=row.stop_loss,
        take_profit=row.take_profit,
        opened_at=row.opened_at,
        closed_at=row.closed_at,
    )
