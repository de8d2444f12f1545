"""The Binance client against a local server speaking Binance's futures wire format."""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from services.common.clock import SystemClock
from services.common.contracts import SymbolFilters
from services.market.binance.client import BinanceClient, ClientPolicy
from services.market.binance.errors import (
    BinanceApiError,
    BinanceUnavailable,
    InvalidSymbol,
    MalformedResponse,
    RateLimited,
)
from tests.fakes.binance import BASE_PRICES, FakeBinance, Fault, fake_binance


class Sleeps:
    """Records the client's waits instead of waiting (the waits are what is tested)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with fake_binance() as server:
        yield server


@contextlib.asynccontextmanager
async def _client(
    fake: FakeBinance, sleeps: Sleeps, **policy: float
) -> AsyncIterator[BinanceClient]:
    """A client of the fake, closed after the test."""
    client = BinanceClient(
        fake.url,
        clock=SystemClock(),
        policy=ClientPolicy(**policy),  # type: ignore[arg-type]
        sleep=sleeps,
        rng=random.Random(1),
    )
    try:
        yield client
    finally:
        await client.aclose()


async def test_normal_answers_keep_binance_prices_exactly(fake: FakeBinance) -> None:
    async with _client(fake, Sleeps()) as client:
        candles = await client.klines("BTCUSDT", "5m", 100)
        assert len(candles) == 100
        assert all(isinstance(c.close, Decimal) for c in candles)
        assert candles[-1].open_time < datetime.now(UTC)
        ticker = await client.ticker_24h("BTCUSDT")
        assert ticker.last_price == Decimal("95123.40")
        assert str(ticker.last_price) == "95123.40"
        assert ticker.volume == Decimal("98765.432")
        assert await client.price("ETHUSDT") == BASE_PRICES["ETHUSDT"]
        premium = await client.premium_index("BTCUSDT")
        assert premium.mark_price == Decimal("95124.90")
        assert premium.funding_rate == Decimal("0.0001")
        assert premium.next_funding_time == datetime(2025, 3, 1, 8, tzinfo=UTC)
        rates = await client.funding_rates("BTCUSDT", 3)
        assert [r.funding_rate for r in rates] == [Decimal("0.00010000")] * 3
        info = await client.exchange_info()
        assert info.filters["BTCUSDT"] == SymbolFilters(
            tick_size=Decimal("0.10"), step_size=Decimal("0.001"), min_notional=Decimal(100)
        )
        assert info.weight_limit == 2400
        assert client.used_weight == fake.used_weight


async def test_reads_are_cached_for_a_minute_ticks_are_not(fake: FakeBinance) -> None:
    async with _client(fake, Sleeps()) as client:
        await client.ticker_24h("BTCUSDT")
        await client.ticker_24h("BTCUSDT")
        assert fake.count("/fapi/v1/ticker/24hr") == 1
        await client.ticker_24h("BTCUSDT", ttl=0)
        assert fake.count("/fapi/v1/ticker/24hr") == 2


async def test_429_waits_for_retry_after_then_succeeds(fake: FakeBinance) -> None:
    sleeps = Sleeps()
    fake.fail(
        "/fapi/v1/ticker/price",
        Fault(429, b'{"code": -1003, "msg": "Too many requests"}', {"Retry-After": "3"}),
    )
    async with _client(fake, sleeps) as client:
        assert await client.price("BTCUSDT") == BASE_PRICES["BTCUSDT"]
        assert sleeps.waits == [3.0]
        assert fake.count("/fapi/v1/ticker/price") == 2


async def test_418_with_a_long_ban_fails_fast_with_a_typed_error(fake: FakeBinance) -> None:
    sleeps = Sleeps()
    fake.fail(
        "/fapi/v1/ticker/price",
        Fault(
            418,
            b'{"code": -1003, "msg": "Way too many requests; IP banned"}',
            {"Retry-After": "120"},
        ),
    )
    async with _client(fake, sleeps) as client:
        with pytest.raises(RateLimited, match=r"IP banned \(418\), retry after 120s") as error:
            await client.price("BTCUSDT")
        assert error.value.retry_after == 120 and sleeps.waits == []


async def test_5xx_is_retried_with_jittered_backoff(fake: FakeBinance) -> None:
    sleeps = Sleeps()
    fake.fail("/fapi/v1/premiumIndex", Fault(503, b"Service Unavailable"), times=2)
    async with _client(fake, sleeps, backoff_base=0.5) as client:
        premium = await client.premium_index("ETHUSDT")
        assert premium.mark_price == BASE_PRICES["ETHUSDT"] + Decimal("1.5")
        assert client.retries == 2
        first, second = sleeps.waits
        assert 0.25 <= first <= 0.75 and 0.5 <= second <= 1.5


async def test_5xx_that_never_ends_is_unavailable(fake: FakeBinance) -> None:
    fake.fail("/fapi/v1/premiumIndex", Fault(502, b"Bad Gateway"), times=10)
    async with _client(fake, Sleeps(), retries=2) as client:
        with pytest.raises(BinanceUnavailable, match="HTTP 502, still failing after 3 attempts"):
            await client.premium_index("ETHUSDT")


async def test_a_timeout_is_retried(fake: FakeBinance) -> None:
    fake.fail("/fapi/v1/ticker/price", Fault(status=0, stall=0.6))
    async with _client(fake, Sleeps(), timeout=0.2) as client:
        assert await client.price("SOLUSDT") == BASE_PRICES["SOLUSDT"]
        assert client.retries == 1


async def test_malformed_json_is_a_clear_error(fake: FakeBinance) -> None:
    fake.fail("/fapi/v1/ticker/24hr", Fault(200, b"<html>maintenance</html>"))
    async with _client(fake, Sleeps()) as client:
        with pytest.raises(MalformedResponse, match=r"not JSON.*maintenance"):
            await client.ticker_24h("BTCUSDT")


async def test_a_wrong_shape_is_a_clear_error(fake: FakeBinance) -> None:
    fake.fail("/fapi/v1/premiumIndex", Fault(200, b'{"symbol": "BTCUSDT"}'))
    async with _client(fake, Sleeps()) as client:
        with pytest.raises(MalformedResponse, match="'markPrice' is missing"):
            await client.premium_index("BTCUSDT")


async def test_an_error_body_becomes_a_typed_error(fake: FakeBinance) -> None:
    fake.fail(
        "/fapi/v1/klines",
        Fault(400, b'{"code": -1120, "msg": "Invalid interval."}'),
    )
    async with _client(fake, Sleeps()) as client:
        with pytest.raises(BinanceApiError, match="code -1120: Invalid interval") as error:
            await client.klines("BTCUSDT", "5m", 10)
        assert (error.value.status, error.value.code) == (400, -1120)


async def test_an_unknown_symbol_is_invalid_symbol(fake: FakeBinance) -> None:
    async with _client(fake, Sleeps()) as client:
        with pytest.raises(InvalidSymbol, match="code -1121: Invalid symbol"):
            await client.ticker_24h("NOPEUSDT")


async def test_it_slows_down_before_the_weight_limit(fake: FakeBinance) -> None:
    sleeps = Sleeps()
    async with _client(fake, sleeps) as client:
        await client.ping()
        assert sleeps.waits == []
        fake.weight_override = 2300  # of 2400: past the 80 % safety share
        await client.price("BTCUSDT", ttl=0)
        assert client.used_weight == 2300
        await client.price("BTCUSDT", ttl=0)
        assert len(sleeps.waits) == 1 and 0 < sleeps.waits[0] <= 60.05
