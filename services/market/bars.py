"""A one-minute bar, whoever made it (a replayed kline file, the simulator), and candles
made of several."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from services.common.contracts import Candle


@dataclass(frozen=True)
class KlineRow:
    open_time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


def candle_of(start: datetime, bars: Sequence[KlineRow]) -> Candle:
    """The candle from ``start`` that ``bars`` (in time order) make together."""
    return Candle(
        open_time=start,
        open=bars[0].open,
        high=max(b.high for b in bars),
        low=min(b.low for b in bars),
        close=bars[-1].close,
        volume=sum((b.volume for b in bars), Decimal(0)),
    )
