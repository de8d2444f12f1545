"""Turns a source's market data into the cycle's ``MarketSnapshot`` (pure)."""

from __future__ import annotations

from datetime import datetime

from services.common.contracts import MarketSnapshot, SymbolSnapshot
from services.market.indicators import columns, context_of, indicators_of
from services.market.source import MarketData, SymbolData


def symbol_snapshot(data: SymbolData) -> SymbolSnapshot:
    arrays = data.arrays
    main = (arrays.high, arrays.low, arrays.close) if arrays else columns(data.candles)
    context = data.arrays_4h
    longer = (context.high, context.low, context.close) if context else columns(data.candles_4h)
    return SymbolSnapshot(
        **dict(data.ticker),
        candles=data.candles,
        indicators=indicators_of(*main),
        filters=data.filters,
        context_4h=context_of(*longer),
    )


def build_snapshot(
    *,
    cycle_id: str,
    taken_at: datetime,
    decision_deadline: datetime,
    source: str,
    data: MarketData,
    data_time: bool = False,
) -> MarketSnapshot:
    return MarketSnapshot(
        cycle_id=cycle_id,
        taken_at=taken_at,
        decision_deadline=decision_deadline,
        source=source,
        symbols=tuple(symbol_snapshot(s) for s in data.symbols),
        unavailable=dict(data.unavailable),
        data_time=data_time,
    )
