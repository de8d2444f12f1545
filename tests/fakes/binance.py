"""A local HTTP server speaking Binance USD-M futures' public REST wire format.

Deterministic prices (strings, as Binance sends them), the request-weight header, and
faults queued per endpoint: an HTTP status with a body and headers, a stall (for
timeouts) or a body that is not JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.common.ops_http import HttpServer, bind_socket

INTERVAL_MS = {"1m": 60_000, "5m": 300_000, "4h": 14_400_000}
FILTERS = {
    "BTCUSDT": ("0.10", "0.001", "100"),
    "ETHUSDT": ("0.01", "0.001", "20"),
    "SOLUSDT": ("0.0100", "1", "5"),
    "BNBUSDT": ("0.010", "0.01", "5"),
    "XRPUSDT": ("0.0001", "0.1", "5"),
    "DOGEUSDT": ("0.000010", "1", "5"),
}
BASE_PRICES = {
    "BTCUSDT": Decimal("95123.40"),
    "ETHUSDT": Decimal("3412.57"),
    "SOLUSDT": Decimal("181.2300"),
    "BNBUSDT": Decimal("651.120"),
    "XRPUSDT": Decimal("2.3456"),
    "DOGEUSDT": Decimal("0.351230"),
}
WEIGHTS = {"/fapi/v1/exchangeInfo": 1, "/fapi/v1/ping": 1}


@dataclass
class Fault:
    status: int = 500
    body: bytes = b'{"code": -1000, "msg": "An unknown error occurred."}'
    headers: dict[str, str] = field(default_factory=dict)
    stall: float = 0.0


def kline_price(base: Decimal, index: int) -> Decimal:
    """A deterministic wiggle around ``base`` on its own decimal places."""
    exponent = base.as_tuple().exponent
    assert isinstance(exponent, int)
    step = Decimal(1).scaleb(exponent)
    return base + step * ((index * 37) % 23 - 11)


class FakeBinance:
    def __init__(self, prices: dict[str, Decimal] | None = None) -> None:
        self.prices = dict(prices or BASE_PRICES)
        self.mark_offset = Decimal("1.5")
        self.funding_rate = "0.00010000"
        self.requests: list[str] = []
        self.used_weight = 0
        self.weight_override: int | None = None
        self._faults: dict[tuple[str, str | None], deque[Fault]] = defaultdict(deque)
        self._server: HttpServer | None = None

    # ------------------------------------------------------------ control

    @property
    def url(self) -> str:
        assert self._server is not None, "the fake is not started"
        return f"http://127.0.0.1:{self._server.port}"

    def fail(self, path: str, fault: Fault, *, times: int = 1, symbol: str | None = None) -> None:
        for _ in range(times):
            self._faults[(path, symbol)].append(fault)

    def count(self, path: str) -> int:
        return sum(1 for r in self.requests if r == path)

    async def start(self) -> None:
        self._server = HttpServer(self._app(), bind_socket("127.0.0.1", 0))
        await self._server.start()

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop()

    # ------------------------------------------------------------ HTTP

    def _app(self) -> Starlette:
        routes = {
            "/fapi/v1/ping": self._ping,
            "/fapi/v1/exchangeInfo": self._exchange_info,
            "/fapi/v1/klines": self._klines,
            "/fapi/v1/ticker/24hr": self._ticker,
            "/fapi/v1/ticker/price": self._price,
            "/fapi/v1/premiumIndex": self._premium,
            "/fapi/v1/fundingRate": self._funding,
        }
        return Starlette(routes=[Route(p, self._wrap(p, h)) for p, h in routes.items()])

    def _wrap(self, path: str, handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            self.requests.append(path)
            self.used_weight += WEIGHTS.get(path, 1)
            symbol = request.query_params.get("symbol")
            fault = self._next_fault(path, symbol)
            if fault is not None:
                if fault.stall:
                    await asyncio.sleep(fault.stall)
                if fault.status:
                    return self._respond(Response(fault.body, fault.status, fault.headers))
            if symbol is not None and symbol not in self.prices:
                return self._respond(
                    JSONResponse({"code": -1121, "msg": "Invalid symbol."}, status_code=400)
                )
            return self._respond(JSONResponse(handler(request, symbol)))

        return endpoint

    def _next_fault(self, path: str, symbol: str | None) -> Fault | None:
        for key in ((path, symbol), (path, None)):
            queue = self._faults.get(key)
            if queue:
                return queue.popleft()
        return None

    def _respond(self, response: Response) -> Response:
        weight = self.weight_override if self.weight_override is not None else self.used_weight
        response.headers["X-MBX-USED-WEIGHT-1M"] = str(weight)
        return response

    # ------------------------------------------------------------ endpoints

    def _ping(self, _: Request, __: str | None) -> object:
        return {}

    def _exchange_info(self, _: Request, __: str | None) -> object:
        return {
            "timezone": "UTC",
            "serverTime": _millis(datetime.now(UTC)),
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": 2400,
                },
                {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
            ],
            "symbols": [
                {
                    "symbol": symbol,
                    "pair": symbol,
                    "contractType": "PERPETUAL",
                    "status": "TRADING",
                    "baseAsset": symbol.removesuffix("USDT"),
                    "quoteAsset": "USDT",
                    "filters": [
                        {
                            "filterType": "PRICE_FILTER",
                            "minPrice": tick,
                            "maxPrice": "1000000",
                            "tickSize": tick,
                        },
                        {
                            "filterType": "LOT_SIZE",
                            "minQty": step,
                            "maxQty": "1000",
                            "stepSize": step,
                        },
                        {"filterType": "MIN_NOTIONAL", "notional": notional},
                    ],
                }
                for symbol, (tick, step, notional) in FILTERS.items()
                if symbol in self.prices
            ],
        }

    def _klines(self, request: Request, symbol: str | None) -> object:
        assert symbol is not None
        interval = INTERVAL_MS[request.query_params["interval"]]
        limit = int(request.query_params.get("limit", "500"))
        now = _millis(datetime.now(UTC))
        last_open = now - now % interval
        base = self.prices[symbol]
        rows = []
        for k in range(limit):
            open_time = last_open - (limit - 1 - k) * interval
            index = open_time // interval
            open_, close = kline_price(base, index - 1), kline_price(base, index)
            if k == limit - 1:
                close = base  # the bar still forming trades at the current price
            high = max(open_, close) + abs(close - open_) + Decimal(1).scaleb(-2)
            low = min(open_, close) - abs(close - open_) / 2
            rows.append(
                [
                    open_time,
                    str(open_),
                    str(high),
                    str(low),
                    str(close),
                    "123.456",
                    open_time + interval - 1,
                    "1000.0",
                    42,
                    "60.0",
                    "500.0",
                    "0",
                ]
            )
        return rows

    def _ticker(self, _: Request, symbol: str | None) -> object:
        assert symbol is not None
        price = self.prices[symbol]
        return {
            "symbol": symbol,
            "priceChange": "1.00",
            "priceChangePercent": "1.234",
            "weightedAvgPrice": str(price),
            "lastPrice": str(price),
            "lastQty": "0.010",
            "openPrice": str(price),
            "highPrice": str(price * 2),
            "lowPrice": str(price / 2),
            "volume": "98765.432",
            "quoteVolume": "9876543210.12",
            "openTime": 0,
            "closeTime": 0,
            "firstId": 1,
            "lastId": 2,
            "count": 2,
        }

    def _price(self, _: Request, symbol: str | None) -> object:
        assert symbol is not None
        return {"symbol": symbol, "price": str(self.prices[symbol]), "time": 0}

    def _premium(self, _: Request, symbol: str | None) -> object:
        assert symbol is not None
        return {
            "symbol": symbol,
            "markPrice": str(self.prices[symbol] + self.mark_offset),
            "indexPrice": str(self.prices[symbol]),
            "estimatedSettlePrice": str(self.prices[symbol]),
            "lastFundingRate": self.funding_rate,
            "interestRate": "0.00010000",
            "nextFundingTime": 1_740_816_000_000,
            "time": _millis(datetime.now(UTC)),
        }

    def _funding(self, _: Request, symbol: str | None) -> object:
        assert symbol is not None
        return [
            {
                "symbol": symbol,
                "fundingTime": 1_740_787_200_000 + k * 28_800_000,
                "fundingRate": self.funding_rate,
                "markPrice": str(self.prices[symbol]),
            }
            for k in range(3)
        ]


def _millis(at: datetime) -> int:
    return int(at.timestamp() * 1000)


@contextlib.asynccontextmanager
async def fake_binance(prices: dict[str, Decimal] | None = None) -> AsyncIterator[FakeBinance]:
    fake = FakeBinance(prices)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()
