"""Live market data from Binance USD-M futures as a :class:`MarketSource`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import datetime

from services.common.contracts import SymbolFilters, SymbolTicker, TickPrice
from services.market.binance.client import BinanceClient
from services.market.binance.errors import BinanceError
from services.market.source import MarketData, SourceError, SymbolData

log = logging.getLogger(__name__)

CANDLES = 100
CONTEXT_CANDLES = 60


class BinanceSource:
    """Every configured symbol, fetched concurrently; a failing symbol is reported, not fatal."""

    def __init__(
        self, client: BinanceClient, symbols: Iterable[str], filters: dict[str, SymbolFilters]
    ) -> None:
        self._client = client
        self.symbols = tuple(symbols)
        self._filters = filters

    @classmethod
    async def open(cls, client: BinanceClient, symbols: Iterable[str]) -> BinanceSource:
        """Reads the exchange info; an unknown or non-trading symbol is a start-up error."""
        symbols = tuple(symbols)
        try:
            info = await client.exchange_info()
        except BinanceError as exc:
            raise SourceError(f"Binance exchange info could not be read: {exc}") from exc
        unknown = [s for s in symbols if s not in info.filters]
        if unknown:
            raise SourceError(
                f"ARENA_SYMBOLS names symbols Binance USD-M futures does not list: "
                f"{', '.join(unknown)}"
            )
        halted = [s for s in symbols if info.status.get(s) != "TRADING"]
        if halted:
            raise SourceError(f"Binance does not trade {', '.join(halted)} right now")
        return cls(client, symbols, {s: info.filters[s] for s in symbols})

    @property
    def name(self) -> str:
        return "binance"

    async def snapshot_data(self, now: datetime) -> MarketData:
        results = await asyncio.gather(
            *(self._symbol(s) for s in self.symbols), return_exceptions=True
        )
        data, unavailable = [], {}
        for symbol, result in zip(self.symbols, results, strict=True):
            if isinstance(result, SymbolData):
                data.append(result)
            elif isinstance(result, Exception):
                log.warning("market data of %s unavailable: %s", symbol, result)
                unavailable[symbol] = str(result) or type(result).__name__
            else:
                raise result
        return MarketData(symbols=tuple(data), unavailable=unavailable)

    async def _symbol(self, symbol: str) -> SymbolData:
        client = self._client
        candles, context, ticker, premium = await asyncio.gather(
            client.klines(symbol, "5m", CANDLES),
            client.klines(symbol, "4h", CONTEXT_CANDLES),
            client.ticker_24h(symbol),
            client.premium_index(symbol),
        )
        return SymbolData(
            ticker=SymbolTicker(
                symbol=symbol,
                last_price=ticker.last_price,
                mark_price=premium.mark_price,
                price_change_pct_24h=ticker.price_change_pct,
                volume_24h=ticker.volume,
                high_24h=ticker.high,
                low_24h=ticker.low,
                funding_rate=premium.funding_rate,
                next_funding_time=premium.next_funding_time,
            ),
            candles=candles,
            candles_4h=context,
            filters=self._filters[symbol],
        )

    async def tick(self, now: datetime) -> tuple[TickPrice, ...]:
        results = await asyncio.gather(
            *(self._tick(s) for s in self.symbols), return_exceptions=True
        )
        prices = [r for r in results if isinstance(r, TickPrice)]
        failed = [
            f"{s}: {r}"
            for s, r in zip(self.symbols, results, strict=True)
            if isinstance(r, Exception)
        ]
        if failed:
            log.warning("tick without %s", "; ".join(failed))
        if not prices:
            raise BinanceError(f"no symbol could be read for the tick: {'; '.join(failed)}")
        return tuple(prices)

    async def _tick(self, symbol: str) -> TickPrice:
        # Ticks must be fresh: no cache. The last two one-minute bars give the latest trade
        # and the range of the past minute, for stops that a wick touched.
        bars, premium = await asyncio.gather(
            self._client.klines(symbol, "1m", 2, closed_only=False, ttl=0),
            self._client.premium_index(symbol, ttl=0),
        )
        if not bars:
            raise BinanceError(f"{symbol}: no one-minute kline")
        last = bars[-1].close
        return TickPrice(
            symbol=symbol,
            last_price=last,
            mark_price=premium.mark_price,
            high=max(*(b.high for b in bars), last),
            low=min(*(b.low for b in bars), last),
        )

    async def aclose(self) -> None:
        await self._client.aclose()
