"""Book contracts: accounts, positions and trades, their events and their queries."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from pydantic import Field

from services.common.contracts.base import AgentId, Message, Money, Price, Quantity
from services.common.contracts.queries import PagedQuery, PagedReply


class PositionSide(StrEnum):
    LONG = "LONG"
    SHORT = "SHORT"


class PositionStatus(StrEnum):
    OPEN = "OPEN"
    CLOSED = "CLOSED"
    LIQUIDATED = "LIQUIDATED"


class PositionView(Message):
    position_id: str
    agent_id: AgentId
    symbol: str
    side: PositionSide
    status: PositionStatus
    entry_price: Price
    current_price: Price
    quantity: Quantity
    leverage: int
    margin: Money
    unrealized_pnl: Money
    liquidation_price: Price | None = None
    stop_loss: Price | None = None
    take_profit: Price | None = None
    opened_at: datetime
    closed_at: datetime | None = None


class PositionEvent(Message):
    """``arena.ledger.position.<agent>``: a position opened or closed."""

    event_id: str
    kind: Literal["opened", "closed"]
    cycle_id: str | None
    position: PositionView
    exit_price: Price | None = None
    realized_pnl: Money | None = None
    fee: Money
    exit_reason: str | None = None
    at: datetime


class AccountView(Message):
    agent_id: AgentId
    display_name: str
    provider: str
    model_name: str
    balance: Money
    margin_used: Money
    equity: Money
    total_pnl: Money
    realized_pnl: Money
    unrealized_pnl: Money
    total_fees: Money
    total_trades: int
    winning_trades: int
    losing_trades: int
    open_positions: int
    is_active: bool


class AccountEvent(Message):
    """``arena.ledger.account.<agent>``: an account's balances changed."""

    event_id: str
    account: AccountView
    at: datetime


# ---------------------------------------------------------------- queries (request-reply)


class PortfolioQuery(Message):
    agent_id: AgentId
    cycle_id: str | None = None
    """The portfolio as this cycle's agents must see it: answered once the cycle's snapshot
    (and so every tick before it) is in the books."""


class Portfolio(Message):
    account: AccountView
    positions: tuple[PositionView, ...]


MAX_PORTFOLIOS_ASKED = 1000


class PortfoliosQuery(Message):
    """Several agents' portfolios in one question (a process hosting them asks once a
    cycle); ``cycle_id`` as in :class:`PortfolioQuery`."""

    agent_ids: tuple[AgentId, ...] = Field(min_length=1, max_length=MAX_PORTFOLIOS_ASKED)
    cycle_id: str | None = None


class Portfolios(Message):
    portfolios: tuple[Portfolio, ...]
    """Those of the agents asked for that have an account, in the order asked."""


class AccountsQuery(Message):
    pass


class Accounts(Message):
    accounts: tuple[AccountView, ...]


class PositionsQuery(PagedQuery):
    status: Literal["open", "closed", "all"] = "open"


class Positions(PagedReply):
    positions: tuple[PositionView, ...]


class TradeView(Message):
    """One execution: an open (exit fields empty) or a close."""

    trade_id: str
    agent_id: AgentId
    position_id: str
    cycle_id: str | None
    symbol: str
    action: Literal["BUY", "SELL"]
    side: PositionSide
    entry_price: Price
    exit_price: Price | None
    quantity: Quantity
    realized_pnl: Money | None
    pnl_percentage: Decimal | None
    fees: Money
    exit_reason: str | None
    executed_at: datetime
    closed_at: datetime | None


class TradesQuery(PagedQuery):
    pass


class Trades(PagedReply):
    trades: tuple[TradeView, ...]
