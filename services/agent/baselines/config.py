"""What a baseline is built with: the rules of the game and its own identity."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from services.agent.baselines.sizing import Book
from services.common.contracts import MarketSnapshot, Portfolio, SymbolSnapshot
from services.common.instruments import InstrumentTable
from services.common.settings import TradingLimits


@dataclass(frozen=True)
class BaselineConfig:
    agent_id: str
    limits: TradingLimits
    symbols: tuple[str, ...]
    seed: int
    # The same table risk and the ledger size positions with, so fees are counted alike.
    instruments: InstrumentTable = field(default_factory=InstrumentTable)

    @property
    def mid_margin(self) -> Decimal:
        return (self.limits.min_margin_usd + self.limits.max_margin_usd) / 2

    def tradable(self, snapshot: MarketSnapshot) -> tuple[SymbolSnapshot, ...]:
        """The snapshot's symbols the arena trades, in a stable order."""
        allowed = set(self.symbols)
        return tuple(sorted((s for s in snapshot.symbols if s.symbol in allowed), key=_key))


class Baseline:
    """A baseline strategy: built with its config, it plans each decision from a ``Book``."""

    def __init__(self, config: BaselineConfig) -> None:
        self._config = config

    def book(self, portfolio: Portfolio) -> Book:
        """The account as this baseline plans it, under the arena's limits and instruments."""
        return Book.of(portfolio, self._config.limits, self._config.instruments)


def _key(s: SymbolSnapshot) -> str:
    return s.symbol
