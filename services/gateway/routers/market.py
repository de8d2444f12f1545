"""``/market/*``: prices, tickers and indicators, as the market service last saw them."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Path, Response

from services.common.contracts import Prices, SnapshotReply, SymbolReply, SymbolTicker
from services.gateway.cache import ReadCache, json_response, serialised
from services.gateway.errors import ERROR_RESPONSES, NotFoundError, not_found
from services.gateway.reader import ArenaReader
from services.gateway.relay import PRICES_KEY
from services.gateway.responses import SymbolIndicators, SymbolPrice, Ticker

Symbol = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9]{2,20}$", description="A traded symbol, e.g. BTCUSDT.")
]
NOT_FOUND = not_found("The symbol is not traded in this arena.")


def router(reader: ArenaReader, symbols: tuple[str, ...], cache: ReadCache) -> APIRouter:
    api = APIRouter(prefix="/market", tags=["market"], responses=ERROR_RESPONSES)
    one_symbol = partial(api.get, responses=NOT_FOUND)  # a route about one symbol, 404 if untraded

    def traded(symbol: str) -> str:
        upper = symbol.upper()
        if upper not in symbols:
            raise NotFoundError(
                f"symbol {symbol!r} is not traded here; symbols: {', '.join(symbols)}"
            )
        return upper

    async def latest(symbol: str) -> SymbolReply:
        return await reader.symbol(traded(symbol))

    @api.get("/snapshot", response_model=SnapshotReply, summary="The latest market snapshot")
    async def snapshot() -> SnapshotReply:
        return await reader.snapshot()

    @api.get("/prices", response_model=Prices, summary="Current prices of every symbol")
    async def prices() -> Response:
        return json_response(await cache.get(PRICES_KEY, lambda: serialised(reader.prices())))

    @one_symbol("/price/{symbol}", response_model=SymbolPrice, summary="One symbol's price")
    async def price(symbol: Symbol) -> SymbolPrice:
        wanted = traded(symbol)
        current = await reader.prices()
        for tick in current.prices:
            if tick.symbol == wanted:
                return SymbolPrice(
                    symbol=tick.symbol,
                    last_price=tick.last_price,
                    mark_price=tick.mark_price,
                    at=current.at,
                    source=current.source,
                )
        raise NotFoundError(f"the market has no price for {wanted} yet")

    @one_symbol(
        "/ticker/{symbol}", response_model=Ticker, summary="One symbol's 24 h ticker and funding"
    )
    async def ticker(symbol: Symbol) -> Ticker:
        reply = await latest(symbol)
        s = reply.symbol
        return Ticker(
            **{name: getattr(s, name) for name in SymbolTicker.model_fields},
            cycle_id=reply.cycle_id,
            taken_at=reply.taken_at,
        )

    @one_symbol(
        "/indicators/{symbol}",
        response_model=SymbolIndicators,
        summary="One symbol's technical indicators",
    )
    async def indicators(symbol: Symbol) -> SymbolIndicators:
        reply = await latest(symbol)
        return SymbolIndicators(
            symbol=reply.symbol.symbol,
            cycle_id=reply.cycle_id,
            taken_at=reply.taken_at,
            indicators=reply.symbol.indicators,
        )

    return api
