"""Closing one position: its row, its trade, the account's book and the ``closed`` event.

A verdict's close, a tick's stop, target or liquidation and a snapshot's liquidation all
end a position the same way, inside the caller's transaction; the caller writes the event
to the outbox (a tick's exit at once, a verdict's with the rest of its round, in order).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import asyncpg

from services.common import subjects
from services.common.contracts import PositionEvent, PositionStatus
from services.ledger import accounting, sql
from services.ledger.accounting import Book, Closing
from services.ledger.outbox import outbox_row
from services.ledger.sql.outbox import OutboxRow
from services.ledger.sql.positions import PositionRow
from services.ledger.views import position_view


def closing_at(position: PositionRow, price: Decimal, fee_rate: Decimal) -> Closing:
    """How ``position`` closes at ``price``, paying the taker fee ``fee_rate``."""
    return accounting.close_position(
        position.side,
        position.entry_price,
        position.quantity,
        position.margin,
        price,
        fee_rate=fee_rate,
    )


@dataclass(frozen=True)
class Closed:
    """The owner's book after a close, and the event announcing it (for the outbox)."""

    book: Book
    event: OutboxRow


async def close_and_announce(
    conn: asyncpg.Connection,
    position: PositionRow,
    closing: Closing,
    book: Book,
    *,
    status: PositionStatus,
    exit_reason: str,
    cycle_id: str | None,
    now: datetime,
) -> Closed:
    """Close ``position`` as ``closing`` says: the owner's book after it, and its event."""
    closed = await sql.positions.close_position(
        conn, position, closing, status=status, exit_reason=exit_reason, cycle_id=cycle_id, now=now
    )
    event_id = f"position:{position.id}:closed"
    event = outbox_row(
        subjects.ledger_position(position.agent_id),
        event_id,
        PositionEvent(
            event_id=event_id,
            kind="closed",
            cycle_id=cycle_id,
            position=position_view(closed),
            exit_price=closing.exit_price,
            realized_pnl=closing.realized_pnl,
            fee=closing.fee,
            exit_reason=exit_reason,
            at=now,
        ),
    )
    return Closed(book.closed(position.margin, position.unrealized_pnl, closing), event)


async def liquidate(
    conn: asyncpg.Connection,
    position: PositionRow,
    book: Book,
    *,
    cycle_id: str | None,
    now: datetime,
) -> Closed:
    """Liquidate ``position`` at its liquidation price: it loses its margin, no more."""
    if position.liquidation_price is None:
        raise ValueError(f"position {position.id} has no liquidation price")
    return await close_and_announce(
        conn,
        position,
        accounting.liquidation_closing(position.margin, position.liquidation_price),
        book,
        status=PositionStatus.LIQUIDATED,
        exit_reason=accounting.EXIT_LIQUIDATION,
        cycle_id=cycle_id,
        now=now,
    )
