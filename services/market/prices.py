"""Answers of the market queries from the latest snapshot and tick (pure)."""

from __future__ import annotations

from services.common.contracts import MarketSnapshot, MarketTick, Prices, TickPrice


def latest_prices(source: str, snapshot: MarketSnapshot | None, tick: MarketTick | None) -> Prices:
    """The newest prices known: the latest tick unless the snapshot is newer."""
    if tick is not None and (snapshot is None or tick.at >= snapshot.taken_at):
        return Prices(at=tick.at, source=source, prices=tick.prices)
    if snapshot is None:
        return Prices(at=None, source=source, prices=())
    return Prices(
        at=snapshot.taken_at,
        source=source,
        prices=tuple(
            TickPrice(
                symbol=s.symbol,
                last_price=s.last_price,
                mark_price=s.mark_price,
                high=s.candles[-1].high if s.candles else s.last_price,
                low=s.candles[-1].low if s.candles else s.last_price,
            )
            for s in snapshot.symbols
        ),
    )
