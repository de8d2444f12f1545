"""Futures accounting (isolated margin, USDT), pure: no I/O, no clock, only Decimal.

Sign conventions: a funding ``amount`` is what the account pays (negative: it receives);
fees are always paid. Equity = balance + margin in use + unrealized PnL
= initial balance + realized PnL + unrealized PnL - fees - funding.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal

from services.common import instruments
from services.common.contracts import PositionSide

DEFAULT_MAINTENANCE_MARGIN_RATE = Decimal("0.004")
QUANTITY_STEP = Decimal("0.00000001")
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
    maintenance_amount: Decimal = ZERO,
    quantity_step: Decimal = QUANTITY_STEP,
) -> Opening:
    """Size a position: notional = margin x leverage, quantity rounded down to the step."""
    if price <= 0:
        raise AccountingError(f"price must be positive, got {price}")
    if margin <= 0:
        raise AccountingError(f"margin must be positive, got {margin}")
    if leverage < 1:
        raise AccountingError(f"leverage must be at least 1, got {leverage}")
    quantity = (margin * leverage / price / quantity_step).to_integral_value(
        ROUND_DOWN
    ) * quantity_step
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
        liquidation_price=instruments.liquidation_price(
            long=side is PositionSide.LONG,
            entry_price=price,
            quantity=quantity,
            margin=margin,
            maintenance_margin_rate=maintenance_margin_rate,
            maintenance_amount=maintenance_amount,
        ),
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


def is_liquidated(side: PositionSide, liquidation: Decimal | None, price: Decimal) -> bool:
    """Whether ``price`` is at or through the liquidation price (none or 0: never)."""
    if liquidation is None or liquidation <= 0:
        return False
    return price <= liquidation if side is PositionSide.LONG else price >= liquidation


def liquidation_closing(margin: Decimal, liquidation_price: Decimal) -> Closing:
    """A liquidation loses the position's margin and no more (no separate closing fee)."""
    return Closing(
        exit_price=liquidation_price,
        realized_pnl=-margin,
        fee=ZERO,
        pnl_percentage=-HUNDRED,
    )


def funding_payment(
    side: PositionSide, mark_price: Decimal, quantity: Decimal, funding_rate: Decimal
) -> Decimal:
    """What the holder pays (negative: receives): longs pay a positive rate, shorts a negative."""
    amount = mark_price * quantity * funding_rate
    return amount if side is PositionSide.LONG else -amount


EXIT_LIQUIDATION = "liquidation"
EXIT_STOP_LOSS = "stop_loss"
EXIT_TAKE_PROFIT = "take_profit"


@dataclass(frozen=True)
class Exit:
    reason: str
    price: Decimal


def triggered_exit(
    side: PositionSide,
    high: Decimal,
    low: Decimal,
    *,
    liquidation: Decimal | None,
    stop_loss: Decimal | None,
    take_profit: Decimal | None,
) -> Exit | None:
    """The exit a bar [low, high] fires, the worse for the trader first when it fires several.

    Liquidation is worse than a stop (it loses the whole margin) and a stop is worse than
    a target, so they are tried in that order.
    """
    long = side is PositionSide.LONG
    # Adverse prices: the low for a long, the high for a short; favourable the other.
    adverse, favourable = (low, high) if long else (high, low)

    def reached_against(level: Decimal) -> bool:
        return adverse <= level if long else adverse >= level

    def reached_for(level: Decimal) -> bool:
        return favourable >= level if long else favourable <= level

    if liquidation is not None and is_liquidated(side, liquidation, adverse):
        return Exit(EXIT_LIQUIDATION, liquidation)
    if stop_loss is not None and reached_against(stop_loss):
        return Exit(EXIT_STOP_LOSS, stop_loss)
    if take_profit is not None and reached_for(take_profit):
        return Exit(EXIT_TAKE_PROFIT, take_profit)
    return None


@dataclass(frozen=True)
class Book:
    """An account's money and counters; every change returns a new Book."""

    balance: Decimal
    margin_used: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    unrealized_pnl: Decimal = ZERO
    total_fees: Decimal = ZERO
    total_funding: Decimal = ZERO
    total_trades: int = 0
    winning_trades: int = 0
    losing_trades: int = 0
    open_positions: int = 0

    @property
    def total_pnl(self) -> Decimal:
        """Net of fees and funding: equity minus the initial balance."""
        return self.realized_pnl - self.total_fees - self.total_funding + self.unrealized_pnl

    @property
    def equity(self) -> Decimal:
        return self.balance + self.margin_used + self.unrealized_pnl

    def can_afford(self, opening: Opening) -> bool:
        """Whether the balance pays the opening's margin and fee (the shared rule)."""
        return instruments.can_afford(self.balance, opening.margin + opening.fee)

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

    def funded(self, amount: Decimal) -> Book:
        """Pay ``amount`` of funding (negative: receive it) from the balance."""
        return replace(
            self, balance=self.balance - amount, total_funding=self.total_funding + amount
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
