"""What a market source gives the scheduler, whichever source it is.

Every source (simulator, Binance, replay) answers the same calls, so nothing after the
source knows where prices come from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from pydantic import JsonValue

from services.common.contracts import Candle, SymbolFilters, SymbolTicker, TickPrice
from services.market.indicators import FloatArray

JsonObject = dict[str, JsonValue]


@dataclass(frozen=True)
class CandleArrays:
    """Float (high, low, close) columns of a candle series, when the source already has them."""

    high: FloatArray
    low: FloatArray
    close: FloatArray


@dataclass(frozen=True)
class SymbolData:
    """One symbol's market state, before indicators are computed."""

    ticker: SymbolTicker
    candles: tuple[Candle, ...]
    candles_4h: tuple[Candle, ...] = ()
    filters: SymbolFilters | None = None
    # Optional float columns of ``candles`` / ``candles_4h``, so indicators skip converting.
    arrays: CandleArrays | None = field(default=None, compare=False)
    arrays_4h: CandleArrays | None = field(default=None, compare=False)

    @property
    def symbol(self) -> str:
        return self.ticker.symbol


@dataclass(frozen=True)
class MarketData:
    """A source's answer for one snapshot; a symbol it could not read is in ``unavailable``."""

    symbols: tuple[SymbolData, ...]
    unavailable: dict[str, str] = field(default_factory=dict)


class MarketSource(Protocol):
    @property
    def name(self) -> str:
        """simulator, binance or replay: shown in snapshots and the scheduler status."""
        ...

    async def snapshot_data(self, now: datetime) -> MarketData:
        """Every configured symbol's state as of ``now``."""
        ...

    async def tick(self, now: datetime) -> tuple[TickPrice, ...]:
        """Advance to the next price step and return it (last, mark, the step's high/low)."""
        ...

    async def aclose(self) -> None:
        """Release what the source holds (connections, files)."""
        ...


class PacedSource(Protocol):
    """A source whose data sets the clock (replay): cycles follow it, not the wall clock."""

    step: timedelta

    def now(self) -> datetime:
        """The market's current time."""
        ...

    def remaining(self) -> int:
        """Price steps (ticks) left."""
        ...


@dataclass(frozen=True)
class Checkpoint:
    """A large restart aid a source keeps now and then, saved beside its small position."""

    key: int  # a new key is a new checkpoint to save
    data: JsonObject


class ResumableSource(Protocol):
    """A source whose position survives a restart (simulator, replay)."""

    def position(self) -> JsonObject:
        """Where the source is: small, saved with every tick."""
        ...

    def checkpoint(self) -> Checkpoint | None:
        """A large restart aid, saved when its key changes; None when there is none."""
        ...

    async def resume(self, position: JsonObject, checkpoint: JsonObject | None) -> None:
        """Continue from a saved position, so the next tick is the one after it.

        Raises :class:`PositionMismatch` when the position belongs to another seed, other
        symbols or other data; an unusable checkpoint only makes resuming slower.
        """
        ...


class SourceError(RuntimeError):
    """The configured source cannot be used; raised at start-up."""


class PositionMismatch(ValueError):
    """A saved position does not belong to the configured source."""
