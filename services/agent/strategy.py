"""What every way of deciding has in common: a snapshot and a portfolio in, actions out."""

from __future__ import annotations

from typing import NamedTuple, Protocol

from services.common.contracts import Action, MarketSnapshot, Portfolio, TradeAction


class StrategyResult(NamedTuple):
    actions: tuple[Action, ...]
    reasoning: str


class Strategy(Protocol):
    """Pure and deterministic: no I/O, the same inputs always give the same result."""

    def decide(self, snapshot: MarketSnapshot, portfolio: Portfolio) -> StrategyResult: ...


HOLD = Action(action=TradeAction.HOLD)


def hold(reasoning: str) -> StrategyResult:
    return StrategyResult((HOLD,), reasoning)
