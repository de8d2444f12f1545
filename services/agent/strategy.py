"""What every way of deciding has in common: a snapshot and a portfolio in, an answer out."""

from __future__ import annotations

from typing import NamedTuple, Protocol

from services.common.contracts import Action, MarketSnapshot, Portfolio, TradeAction


class Answer(NamedTuple):
    """What a strategy decided, or what a model's text says: the actions and why.

    ``thinking`` is a model's separate reasoning block, when it writes one.
    """

    actions: tuple[Action, ...]
    reasoning: str
    thinking: str | None = None


class Strategy(Protocol):
    """Pure and deterministic: no I/O, the same inputs always give the same result."""

    def decide(self, snapshot: MarketSnapshot, portfolio: Portfolio) -> Answer: ...


HOLD = Action(action=TradeAction.HOLD)


def hold(reasoning: str) -> Answer:
    return Answer((HOLD,), reasoning)
