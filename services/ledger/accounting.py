"""Futures accounting (isolated margin, USDT), pure: no I/O, no clock, only Decimal.

Issue 6 deepens this module (step sizes per symbol, the maintenance-margin tier table,
funding, stops); the shapes here are what it extends.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal

from services.common.contracts import PositionSide

DEFAULT_MAINTENANCE_MARGIN_RATE = Decimal("0.004")
QUANTITY_STEP = Decimal("0.00000001")
PRICE_STEP = Decimal("0.00000001")
PERCENT_STEP = Decimal("0.0001")
ZERO = Decimal(0)
HUNDRED = Decimal(100)


class AccountingError(ValueError):
    """Inputs no position can be built from (a zero price, a quantity that rounds to 0)."""


@dataclass(frozen=True)
class Opening:
    side: PositionSide
    entry_price: Decimal
    quantity: Decimal
    leverage: int
    margin: Decimal
    notional: Decimal
    fee: Decimal
    liquidation_price: Decimal


@dataclass(frozen=True)
class Closing:
    exit_price: Decimal
    realized_pnl: Decimal
    fee: Decimal
    pnl_percentage: Decimal

    @property
    def is_win(self) -> bool:
        return self.realized_pnl > 0


def open_position(
    side: PositionSide,
    price: Decimal,
    margin: Decimal,
    leverage: int,
    *,
    fee_rate: Decimal,
    maintenance_margin_rate: Decimal = DEFAULT_MAINTENANCE_MARGIN_RATE,
) -> Opening:
    """Size a position: notional = margin x leverage, quantity rounded down to the step."""
    if price <= 0:
        raise AccountingError(f"price must be positive, got {price}")
    if margin <= 0:
        raise AccountingError(f"margin must be positive, got {margin}")
    if leverage < 1:
        raise AccountingError(f"leverage must be at least 1, got {leverage}")
    quantity = (margin * leverage / price).quantize(QUANTITY_STEP, rounding=ROUND_DOWN)
    if quantity <= 0:
        raise AccountingError(f"margin {margin} x {leverage} buys nothing at {price}")
    # The fee is charged on what was actually bought, not on the unrounded notional.
    notional = price * quantity
    return Opening(
        side=side,
        entry_price=price,
        quantity=quantity,
        leverage=leverage,
        margin=margin,
        notional=notional,
        fee=fee_rate * notional,
        liquidation_price=liquidation_price(side, price, quantity, margin, maintenance_margin_rate),
    )


def unrealized_pnl(
    side: PositionSide, entry_price: Decimal, mark_price: Decimal, quantity: Decimal
) -> Decimal:
    move = mark_price - entry_price
    return move * quantity if side is PositionSide.LONG else -move * quantity


def close_position(
    side: PositionSide,
    entry_price: Decimal,
    quantity: Decimal,
    margin: Decimal,
    exit_price: Decimal,
    *,
    fee_rate: Decimal,
) -> Closing:
    if exit_price <= 0:
        raise AccountingError(f"exit price must be positive, got {exit_price}")
    realized = unrealized_pnl(side, entry_price, exit_price, quantity)
    return Closing(
        exit_price=exit_price,
        realized_pnl=realized,
        fee=fee_rate * exit_price * quantity,
        pnl_percentage=(realized / margin * HUNDRED).quantize(PERCENT_STEP, ROUND_HALF_EVEN),
    )


def liquidation_price(
    side: PositionSide,
    entry_price: Decimal,
    quantity: Decimal,
    margin: Decimal,
    maintenance_margin_rate: Decimal = DEFAULT_MAINTENANCE_MARGIN_RATE,
) -> Decimal:
    """Isolated-margin liquidation price with one maintenance rate and no maintenance amount.

    Liquidation is where margin + PnL equals maintenance margin (rate x price x quantity).
    Issue 6 replaces the single rate with the symbol's Binance tier (rate and amount).
    """
    if side is PositionSide.LONG:
        price = (entry_price * quantity - margin) / (quantity * (1 - maintenance_margin_rate))
    else:
        price = (entry_price * quantity + margin) / (quantity * (1 + maintenance_margin_rate))
    return max(price, ZERO).quantize(PRICE_STEP, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True)
class Book:
    """An account's money and counters; every change returns a new Book."""

    balance: Decimal
    margin_used: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    unrealized_pnl: Decimal = ZERO
    total_fees: Decimal = ZERO
    total_trades: int = 0
    winning_trades: int = 0
    losing_trades: int = 0
    open_positions: int = 0

    @property
    def total_pnl(self) -> Decimal:
        """Net of fees: equity minus the initial balance."""
        return self.realized_pnl - self.total_fees + self.unrealized_pnl

    @property
    def equity(self) -> Decimal:
        return self.balance + self.margin_used + self.unrealized_pnl

    def can_afford(self, opening: Opening) -> bool:
        return self.balance >= opening.margin + opening.fee

    def opened(self, opening: Opening) -> Book:
        return replace(
            self,
            balance=self.balance - opening.margin - opening.fee,
            margin_used=self.margin_used + opening.margin,
            total_fees=self.total_fees + opening.fee,
            total_trades=self.total_trades + 1,
            open_positions=self.open_positions + 1,
        )

    def closed(self, margin: Decimal, last_unrealized: Decimal, closing: Closing) -> Book:
        """Release ``margin`` and book ``closing``; ``last_unrealized`` leaves the mark."""
        return replace(
            self,
            balance=self.balance + margin + closing.realized_pnl - closing.fee,
            margin_used=self.margin_used - margin,
            realized_pnl=self.realized_pnl + closing.realized_pnl,
            unrealized_pnl=self.unrealized_pnl - last_unrealized,
            total_fees=self.total_fees + closing.fee,
            total_trades=self.total_trades + 1,
            winning_trades=self.winning_trades + (1 if closing.is_win else 0),
            losing_trades=self.losing_trades + (0 if closing.is_win else 1),
            open_positions=self.open_positions - 1,
        )

    def marked(self, unrealized: Decimal) -> Book:
        return replace(self, unrealized_pnl=unrealized)


def return_pct(equity: Decimal, initial_balance: Decimal) -> Decimal:
    return ((equity - initial_balance) / initial_balance * HUNDRED).quantize(PERCENT_STEP)


def win_rate(winning: int, losing: int) -> Decimal:
    """Percentage of closed trades that made money; 0 before the first close."""
    closed = winning + losing
    if closed == 0:
        return ZERO
    return (Decimal(winning) / Decimal(closed) * HUNDRED).quantize(PERCENT_STEP)
