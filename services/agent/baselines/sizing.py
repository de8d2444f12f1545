"""Shared arithmetic of the baselines: how much to put on, where the stop and target go.

Baselines are benchmarks the models must beat, so they play by the same rules: every
open they propose is one the risk service would accept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from decimal import ROUND_DOWN, Decimal

from services.agent.strategy import Answer, hold
from services.common.contracts import Action, Portfolio, PositionSide, PositionStatus, TradeAction
from services.common.instruments import InstrumentTable, can_afford, opening_cost
from services.common.settings import TradingLimits

CENT = Decimal("0.01")
# Keep the stop well inside the liquidation distance (about price / leverage).
MAX_STOP_SHARE_OF_LIQUIDATION = Decimal("0.5")
DEFAULT_STOP_FRACTION = Decimal("0.02")
MIN_STOP_FRACTION = Decimal("0.005")
SIGNIFICANT_DIGITS = 6
REWARD_TO_RISK = Decimal(2)


@dataclass(frozen=True)
class Book:
    """The account as a baseline plans it: what is open, and what opening more would use."""

    limits: TradingLimits
    open_sides: dict[str, PositionSide]
    balance: Decimal
    # Margin the utilisation cap still allows (max utilisation x equity - margin in use).
    headroom: Decimal | None = None
    instruments: InstrumentTable = field(default_factory=InstrumentTable)

    @classmethod
    def of(
        cls, portfolio: Portfolio, limits: TradingLimits, instruments: InstrumentTable | None = None
    ) -> Book:
        sides = {p.symbol: p.side for p in portfolio.positions if p.status == PositionStatus.OPEN}
        account = portfolio.account
        headroom = limits.max_margin_utilisation * account.equity - account.margin_used
        return cls(limits, sides, account.balance, headroom, instruments or InstrumentTable())

    def cost(self, symbol: str, margin: Decimal, leverage: int, price: Decimal) -> Decimal:
        """What the ledger will take from the balance for this open (margin + fee)."""
        return opening_cost(
            self.instruments[symbol], margin, leverage, price, self.limits.taker_fee_rate
        )

    def margin_for(self, preferred: Decimal, leverage: int) -> Decimal | None:
        """``preferred`` clamped to the limits and to what the balance covers; None if too poor."""
        low, high = self.limits.min_margin_usd, self.limits.max_margin_usd
        margin = min(max(preferred, low), high)
        # Solves ``opening_cost`` at its upper bound (fee on the unrounded notional) for the
        # margin: the step-rounded cost the ledger charges is never more than that.
        affordable = self.balance / (1 + leverage * self.limits.taker_fee_rate)
        if self.headroom is not None:
            affordable = min(affordable, self.headroom)
        margin = min(margin, affordable).quantize(CENT, rounding=ROUND_DOWN)
        return margin if margin >= low else None

    def leverage(self, preferred: int) -> int:
        return max(self.limits.min_leverage, min(preferred, self.limits.max_leverage))


class Plan:
    """Actions being assembled for one decision, keeping the limits as it goes."""

    def __init__(self, book: Book) -> None:
        self._book = book
        self._balance = book.balance
        self._headroom = book.headroom
        self._opens = 0
        self._actions: list[Action] = []
        self._used: set[str] = set()
        self.notes: list[str] = []

    @property
    def actions(self) -> tuple[Action, ...]:
        return tuple(self._actions)

    def decision(self, otherwise: str) -> Answer:
        """The planned actions with their notes; a hold saying ``otherwise`` if there are none."""
        if not self._actions:
            return hold(otherwise)
        return Answer(self.actions, "; ".join(self.notes))

    def can_open(self, symbol: str) -> bool:
        # Closes in the same decision do not free a slot: risk counts them after the fact.
        held = len(self._book.open_sides) + self._opens
        return (
            symbol not in self._used
            and symbol not in self._book.open_sides
            and held < self._book.limits.max_open_positions
        )

    def close(self, symbol: str, note: str) -> None:
        if symbol in self._used or symbol not in self._book.open_sides:
            return
        self._used.add(symbol)
        self._actions.append(Action(action=TradeAction.CLOSE, symbol=symbol))
        self.notes.append(note)

    def open(
        self,
        side: PositionSide,
        symbol: str,
        price: Decimal,
        *,
        preferred_margin: Decimal,
        preferred_leverage: int,
        stop_distance: Decimal | None,
        note: str,
        confidence: float = 0.5,
        take_profit: bool = True,
    ) -> bool:
        if not self.can_open(symbol) or price <= 0:
            return False
        book = replace(self._book, balance=self._balance, headroom=self._headroom)
        leverage = book.leverage(preferred_leverage)
        margin = book.margin_for(preferred_margin, leverage)
        if margin is None:
            return False
        cost = book.cost(symbol, margin, leverage, price)
        if not can_afford(self._balance, cost):
            return False
        stop, target = protective_levels(side, price, stop_distance, leverage)
        self._actions.append(
            Action(
                action=TradeAction.BUY if side == PositionSide.LONG else TradeAction.SELL,
                symbol=symbol,
                margin_usd=margin,
                leverage=leverage,
                stop_loss=stop,
                take_profit=target if take_profit else None,
                confidence=confidence,
            )
        )
        self._used.add(symbol)
        self._opens += 1
        self._balance -= cost
        if self._headroom is not None:
            self._headroom -= margin
        self.notes.append(note)
        return True


def atr_stop(atr: float | None) -> Decimal | None:
    """The usual stop distance: two average true ranges."""
    return Decimal(str(2 * atr)) if atr is not None and math.isfinite(atr) and atr > 0 else None


def protective_levels(
    side: PositionSide, price: Decimal, stop_distance: Decimal | None, leverage: int
) -> tuple[Decimal, Decimal]:
    """Stop ``stop_distance`` away (2 % if None), inside half the liquidation gap; 2R target."""
    distance = stop_distance if stop_distance else price * DEFAULT_STOP_FRACTION
    distance = max(distance, price * MIN_STOP_FRACTION)
    distance = min(distance, price / leverage * MAX_STOP_SHARE_OF_LIQUIDATION)
    sign = 1 if side == PositionSide.LONG else -1
    stop = price - sign * distance
    target = price + sign * distance * REWARD_TO_RISK
    return _significant(stop), _significant(target)


def _significant(value: Decimal) -> Decimal:
    """Round to a few significant digits: enough for any symbol, from BTC to DOGE."""
    return value.quantize(Decimal(1).scaleb(value.adjusted() - SIGNIFICANT_DIGITS + 1))
