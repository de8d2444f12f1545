"""Async client of Binance USD-M futures' public market REST API.

It keeps under the request-weight budget (``X-MBX-USED-WEIGHT-1M``), waits out 429 and
418 answers as long as their ``Retry-After`` is reasonable, retries timeouts, connection
errors and 5xx with jittered exponential back-off, caches reads for a while, and turns
every failure into a typed :mod:`~services.market.binance.errors` error.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

from services.common.clock import Clock
from services.common.contracts import Candle
from services.market.binance import wire
from services.market.binance.errors import (
    INVALID_SYMBOL_CODE,
    BinanceApiError,
    BinanceUnavailable,
    InvalidSymbol,
    MalformedResponse,
    RateLimited,
)
from services.market.cache import TtlCache

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://fapi.binance.com"
WEIGHT_HEADER = "x-mbx-used-weight-1m"
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class ClientPolicy:
    timeout: float = 5.0
    retries: int = 3
    backoff_base: float = 0.25
    backoff_max: float = 8.0
    # Longest Retry-After waited in place; longer bans fail fast so the cycle goes on.
    max_retry_after: float = 10.0
    weight_limit: int = 2400
    # Share of the weight budget after which requests wait for the next minute.
    weight_safety: float = 0.8
    cache_ttl: float = 60.0


def kline_weight(limit: int) -> int:
    """Binance's documented weight of a klines request of ``limit`` rows."""
    if limit < 100:
        return 1
    if limit < 500:
        return 2
    return 5 if limit <= 1000 else 10


class BinanceClient:
    def __init__(
        self,
        base_url: str,
        *,
        clock: Clock,
        policy: ClientPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._policy = policy or ClientPolicy()
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=self._policy.timeout, transport=transport
        )
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._cache: TtlCache[Any] = TtlCache(clock)
        self._used_weight = 0
        self._weight_limit = self._policy.weight_limit
        self._weight_lock = asyncio.Lock()
        self.requests = 0
        self.retries = 0

    @property
    def used_weight(self) -> int:
        return self._used_weight

    @property
    def weight_limit(self) -> int:
        return self._weight_limit

    async def aclose(self) -> None:
        await self._http.aclose()

    # ------------------------------------------------------------ endpoints

    async def ping(self) -> None:
        await self._get("/fapi/v1/ping", {}, weight=1, ttl=0)

    async def klines(
        self, symbol: str, interval: str, limit: int, *, closed_only: bool = True, ttl: float = -1
    ) -> tuple[Candle, ...]:
        """Candles oldest first; with ``closed_only`` the one still forming is dropped."""
        body = await self._get(
            "/fapi/v1/klines",
            {"symbol": symbol, "interval": interval, "limit": limit + (1 if closed_only else 0)},
            weight=kline_weight(limit + 1),
            ttl=ttl,
        )
        candles = wire.parse_klines(body)
        if closed_only:
            now = self._clock.now()
            closes = wire.kline_close_time(body)
            candles = tuple(c for c, end in zip(candles, closes, strict=True) if end < now)
            candles = candles[-limit:]
        return candles

    async def ticker_24h(self, symbol: str, *, ttl: float = -1) -> wire.Ticker24h:
        body = await self._get("/fapi/v1/ticker/24hr", {"symbol": symbol}, weight=1, ttl=ttl)
        return wire.parse_ticker(body)

    async def price(self, symbol: str, *, ttl: float = -1) -> Decimal:
        body = await self._get("/fapi/v1/ticker/price", {"symbol": symbol}, weight=1, ttl=ttl)
        return wire.parse_price(body)

    async def premium_index(self, symbol: str, *, ttl: float = -1) -> wire.PremiumIndex:
        body = await self._get("/fapi/v1/premiumIndex", {"symbol": symbol}, weight=1, ttl=ttl)
        return wire.parse_premium_index(body)

    async def funding_rates(
        self, symbol: str, limit: int = 10, *, ttl: float = -1
    ) -> tuple[wire.FundingRate, ...]:
        body = await self._get(
            "/fapi/v1/fundingRate", {"symbol": symbol, "limit": limit}, weight=1, ttl=ttl
        )
        return wire.parse_funding_rates(body)

    async def exchange_info(self, *, ttl: float = 3600) -> wire.ExchangeInfo:
        info = wire.parse_exchange_info(
            await self._get("/fapi/v1/exchangeInfo", {}, weight=1, ttl=ttl)
        )
        if info.weight_limit:
            self._weight_limit = info.weight_limit
        return info

    # ------------------------------------------------------------ transport

    async def _get(self, path: str, params: dict[str, Any], *, weight: int, ttl: float) -> Any:
        ttl = self._policy.cache_ttl if ttl < 0 else ttl
        key = f"{path}?{sorted(params.items())}"
        if ttl > 0:
            cached = self._cache.get(key)
            if cached is not None:
                return cached
        body = await self._request(path, params, weight)
        if ttl > 0:
            self._cache.put(key, body, ttl)
        return body

    async def _request(self, path: str, params: dict[str, Any], weight: int) -> Any:
        policy = self._policy
        attempt = 0
        while True:
            await self._respect_weight(weight)
            self.requests += 1
            try:
                response = await self._http.get(path, params=params)
            except httpx.TimeoutException as exc:
                failure = f"timed out after {policy.timeout}s ({type(exc).__name__})"
            except httpx.TransportError as exc:
                failure = f"connection failed ({type(exc).__name__}: {exc})"
            else:
                self._note_weight(response)
                status = response.status_code
                if status in (418, 429):
                    retry_after = _retry_after(response)
                    if retry_after > policy.max_retry_after or attempt >= policy.retries:
                        raise RateLimited(status, retry_after, path)
                    log.warning("Binance %s: HTTP %d, waiting %.1fs", path, status, retry_after)
                    attempt += 1
                    self.retries += 1
                    await self._sleep(retry_after)
                    continue
                if status >= 500:
                    failure = f"HTTP {status}"
                else:
                    return _decode(response, path)
            if attempt >= policy.retries:
                raise BinanceUnavailable(
                    f"Binance {path}: {failure}, still failing after {attempt + 1} attempts"
                )
            delay = min(policy.backoff_max, policy.backoff_base * 2**attempt)
            delay *= 0.5 + self._rng.random()
            log.warning("Binance %s: %s, retrying in %.2fs", path, failure, delay)
            attempt += 1
            self.retries += 1
            await self._sleep(delay)

    async def _respect_weight(self, weight: int) -> None:
        async with self._weight_lock:
            budget = self._weight_limit * self._policy.weight_safety
            if self._used_weight + weight <= budget:
                self._used_weight += weight
                return
            # The weight window is the wall-clock minute: wait for the next one.
            now = self._clock.now()
            wait = 60 - now.second - now.microsecond / 1e6 + 0.05
            log.warning(
                "Binance request weight %d of %d used, waiting %.1fs for the next minute",
                self._used_weight,
                self._weight_limit,
                wait,
            )
            await self._sleep(wait)
            self._used_weight = weight

    def _note_weight(self, response: httpx.Response) -> None:
        used = response.headers.get(WEIGHT_HEADER)
        if used is not None and used.isdigit():
            self._used_weight = int(used)


def _retry_after(response: httpx.Response) -> float:
    value = response.headers.get("retry-after", "")
    try:
        return max(float(value), 0.0)
    except ValueError:
        return 1.0


def _decode(response: httpx.Response, path: str) -> Any:
    try:
        body = json.loads(response.content)
    except ValueError as exc:
        raise MalformedResponse(
            f"Binance {path}: HTTP {response.status_code} with a body that is not JSON: "
            f"{response.text[:120]!r}"
        ) from exc
    error = wire.parse_error(body)
    if response.status_code >= 400 or error is not None:
        code, msg = error or (0, response.text[:200])
        kind = InvalidSymbol if code == INVALID_SYMBOL_CODE else BinanceApiError
        raise kind(response.status_code, code, msg, path)
    return body
