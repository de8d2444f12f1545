"""Binance as the market source: exact prices, failing symbols reported, start-up checks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from services.common import channels
from services.common.clock import ManualClock, SystemClock
from services.common.contracts import (
    Prices,
    PricesQuery,
    SchedulerStatus,
    SymbolQuery,
    SymbolReply,
)
from services.common.settings import Settings
from services.market.binance.client import BinanceClient, ClientPolicy
from services.market.binance.source import BinanceSource
from services.market.selection import create_source
from services.market.snapshot import build_snapshot
from services.market.source import SourceError
from tests.fakes.binance import BASE_PRICES, Fault, fake_binance
from tests.market.observer import MANUAL, MARKET, T0, observing
from tests.support import eventually, running

SYMBOLS = ("BTCUSDT", "ETHUSDT", "DOGEUSDT")
NOW = datetime(2025, 3, 1, tzinfo=UTC)


async def _noop(_: float) -> None:
    return None


async def test_snapshot_carries_the_servers_prices_and_filters() -> None:
    async with fake_binance() as fake:
        client = BinanceClient(fake.url, clock=SystemClock(), sleep=_noop)
        source = await BinanceSource.open(client, SYMBOLS)
        try:
            data = await source.snapshot_data(NOW)
            snapshot = build_snapshot(
                cycle_id="c", taken_at=NOW, decision_deadline=NOW, source=source.name, data=data
            )
        finally:
            await source.aclose()
    assert snapshot.unavailable == {}
    assert [s.symbol for s in snapshot.symbols] == list(SYMBOLS)
    doge = snapshot.symbol("DOGEUSDT")
    assert doge is not None
    assert doge.last_price == BASE_PRICES["DOGEUSDT"] and str(doge.last_price) == "0.351230"
    assert doge.mark_price == Decimal("1.851230")
    assert doge.high_24h == BASE_PRICES["DOGEUSDT"] * 2
    assert doge.price_change_pct_24h == Decimal("1.234")
    assert doge.funding_rate == Decimal("0.0001")
    assert doge.filters is not None and doge.filters.tick_size == Decimal("0.000010")
    assert len(doge.candles) == 100
    assert doge.indicators.rsi_14 is not None and doge.indicators.ema_50 is not None
    assert doge.context_4h is not None and doge.context_4h.ema_50 is not None


async def test_a_failing_symbol_is_unavailable_and_the_others_are_there() -> None:
    async with fake_binance() as fake:
        client = BinanceClient(
            fake.url, clock=SystemClock(), sleep=_noop, policy=ClientPolicy(retries=1)
        )
        source = await BinanceSource.open(client, SYMBOLS)
        fake.fail("/fapi/v1/ticker/24hr", Fault(500, b"oops"), times=5, symbol="ETHUSDT")
        try:
            data = await source.snapshot_data(NOW)
            ticks = await source.tick(NOW)
        finally:
            await source.aclose()
    assert [s.symbol for s in data.symbols] == ["BTCUSDT", "DOGEUSDT"]
    assert "HTTP 500" in data.unavailable["ETHUSDT"]
    assert {t.symbol for t in ticks} == set(SYMBOLS)
    btc = next(t for t in ticks if t.symbol == "BTCUSDT")
    assert btc.last_price == BASE_PRICES["BTCUSDT"]
    assert btc.low <= btc.last_price <= btc.high


async def test_an_unknown_configured_symbol_is_a_start_up_error() -> None:
    async with fake_binance() as fake:
        settings = Settings(
            _env_file=None,
            MARKET_SOURCE="binance",
            BINANCE_BASE_URL=fake.url,
            ARENA_SYMBOLS="BTCUSDT,FOOUSDT",
        )
        with pytest.raises(SourceError, match="does not list: FOOUSDT"):
            await create_source(settings, SystemClock())


async def test_auto_uses_binance_when_it_answers() -> None:
    async with fake_binance() as fake:
        settings = Settings(_env_file=None, MARKET_SOURCE="auto", BINANCE_BASE_URL=fake.url)
        source = await create_source(settings, SystemClock())
        await source.aclose()
    assert source.name == "binance"


async def test_the_service_publishes_binance_prices_and_answers_queries(
    make_settings: Callable[..., Settings], nats_url: str
) -> None:
    async with fake_binance() as fake:
        settings = make_settings(
            **{**MANUAL, "MARKET_SOURCE": "binance", "BINANCE_BASE_URL": fake.url}
        )
        clock = ManualClock(T0)
        async with observing(nats_url) as obs, running("market", MARKET, settings, clock):
            await eventually(lambda: obs.snapshots, what="a snapshot from binance")
            snapshot = obs.snapshots[0][1]
            assert snapshot.source == "binance"
            btc = snapshot.symbol("BTCUSDT")
            assert btc is not None and btc.last_price == BASE_PRICES["BTCUSDT"]
            status: SchedulerStatus = await obs.status()
            assert status.source == "binance"
            clock.advance(10)
            await eventually(lambda: obs.ticks, what="a tick from binance")
            prices = await obs.bus.request(
                channels.MARKET_QUERY_PRICES.subject, PricesQuery(), Prices
            )
            assert prices.source == "binance"
            assert {p.symbol: p.last_price for p in prices.prices}["ETHUSDT"] == BASE_PRICES[
                "ETHUSDT"
            ]
            reply = await obs.bus.request(
                channels.MARKET_QUERY_SYMBOL.subject, SymbolQuery(symbol="ethusdt"), SymbolReply
            )
            assert reply.symbol.symbol == "ETHUSDT"
            assert reply.symbol.mark_price == BASE_PRICES["ETHUSDT"] + Decimal("1.5")
