"""Rows to wire views (the shapes events and query replies carry)."""

from __future__ import annotations

from services.common.contracts import AccountView, PositionView
from services.ledger.sql.accounts import AccountRow
from services.ledger.sql.positions import PositionRow


def account_view(row: AccountRow) -> AccountView:
    return AccountView.model_validate(row, from_attributes=True)


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
