"""Market contracts: the snapshot of a cycle, ticks between cycles, and the market's queries."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import Field

from services.common.contracts.base import Message, Money, Price, Quantity


class Candle(Message):
    open_time: datetime
    open: Price
    high: Price
    low: Price
    close: Price
    volume: Decimal


class Indicators(Message):
    """Technical indicators of the latest closed candle; ``None`` when not computable yet."""

    rsi_7: float | None = None
    rsi_14: float | None = None
    ema_20: float | None = None
    ema_50: float | None = None
    macd: float | None = None
    macd_signal: float | None = None
    macd_hist: float | None = None
    bb_upper: float | None = None
    bb_middle: float | None = None
    bb_lower: float | None = None
    atr_14: float | None = None


class SymbolFilters(Message):
    """The exchange's trading filters of a symbol: price tick, quantity step, minimum notional."""

    tick_size: Price
    step_size: Quantity
    min_notional: Money


class SymbolTicker(Message):
    """A symbol's price, 24 h figures and funding: what every source reads for a snapshot."""

    symbol: str
    last_price: Price
    mark_price: Price
    price_change_pct_24h: Decimal
    volume_24h: Decimal
    high_24h: Price
    low_24h: Price
    funding_rate: Decimal
    next_funding_time: datetime


class SymbolSnapshot(SymbolTicker):
    """A symbol in a cycle's snapshot: its ticker, candles and indicators."""

    candles: tuple[Candle, ...]
    indicators: Indicators
    filters: SymbolFilters | None = Field(
        default=None, description="Exchange filters (binance exchangeInfo, simulator table)."
    )
    context_4h: Indicators | None = Field(
        default=None,
        description="Longer-term context: EMA 20/50, ATR 14, RSI 14 on 4-hour candles.",
    )


class MarketSnapshot(Message):
    """``arena.market.snapshot``: the one view of the market every agent gets for a cycle."""

    cycle_id: str
    taken_at: datetime
    decision_deadline: datetime
    source: str = Field(description="simulator, binance or replay")
    symbols: tuple[SymbolSnapshot, ...]
    unavailable: dict[str, str] = Field(
        default_factory=dict, description="Symbol -> reason it is missing from this snapshot."
    )
    candles_omitted: bool = Field(
        default=False,
        description="True on the wire: the event leaves the candles out (they are most of "
        "its size, and only a model's prompt reads them); ask arena.market.query.snapshot "
        "with the cycle id for the full snapshot.",
    )
    data_time: bool = Field(
        default=False,
        description="A replay: times, the decision deadline and every timestamp derived from "
        "them follow the data, and answers are waited for instead of racing the wall clock.",
    )

    def symbol(self, symbol: str) -> SymbolSnapshot | None:
        return next((s for s in self.symbols if s.symbol == symbol), None)

    def without_candles(self) -> MarketSnapshot:
        """This snapshot as the event carries it: everything but the candles."""
        lean = tuple(s.model_copy(update={"candles": ()}) for s in self.symbols)
        return self.model_copy(update={"symbols": lean, "candles_omitted": True})


class FundingSettlement(Message):
    """A funding settlement: when it fell and the rate it settled at."""

    funding_time: datetime
    rate: Decimal


class TickPrice(Message):
    symbol: str
    last_price: Price
    mark_price: Price
    high: Price
    low: Price
    settlement: FundingSettlement | None = Field(
        default=None,
        description="A replay of Binance data: the funding settlement within this bar. A "
        "replay's funding is charged at exactly these, at their rate.",
    )


class MarketTick(Message):
    """``arena.market.tick``: prices between cycles, for stops, targets and liquidations."""

    tick_id: str
    at: datetime
    prices: tuple[TickPrice, ...]
    data_time: bool = Field(
        default=False,
        description="A replay: times, the decision deadline and every timestamp derived from "
        "them follow the data, and answers are waited for instead of racing the wall clock.",
    )


# ---------------------------------------------------------------- queries (request-reply)


class PricesQuery(Message):
    pass


class Prices(Message):
    at: datetime | None
    source: str
    prices: tuple[TickPrice, ...]


class SymbolQuery(Message):
    symbol: str


class SymbolReply(Message):
    """The latest snapshot data of one symbol (ticker, funding, candles, indicators)."""

    cycle_id: str
    taken_at: datetime
    symbol: SymbolSnapshot


class SnapshotQuery(Message):
    cycle_id: str | None = Field(
        default=None,
        description="The full snapshot (candles included) of this cycle, while the market "
        "still holds it (its recent cycles); none: the latest.",
    )


class SnapshotReply(Message):
    snapshot: MarketSnapshot | None
