"""The simulator: reproducible, realistic shape, Decimal prices on the symbol's tick grid."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.common.instruments import InstrumentTable
from services.common.settings import DEFAULT_SYMBOLS
from services.market.simulator import PROFILES, MarketSimulator, SimulatorSource
from services.market.source import next_funding_time

START = datetime(2025, 3, 1, 12, 3, 20, tzinfo=UTC)


def _closes(sim: MarketSimulator, symbol: str) -> list[Decimal]:
    return [b.close for b in sim.bars(symbol)]


def test_same_seed_same_prices_different_seed_different() -> None:
    a = MarketSimulator(7, DEFAULT_SYMBOLS, START)
    b = MarketSimulator(7, DEFAULT_SYMBOLS, START)
    c = MarketSimulator(8, DEFAULT_SYMBOLS, START)
    for _ in range(10):
        assert a.step() == b.step()
        c.step()
    for symbol in DEFAULT_SYMBOLS:
        assert _closes(a, symbol) == _closes(b, symbol)
        assert a.candles(symbol) == b.candles(symbol)
        assert _closes(a, symbol) != _closes(c, symbol)


def test_a_symbols_walk_does_not_depend_on_the_other_symbols() -> None:
    alone = MarketSimulator(7, ("ETHUSDT",), START)
    together = MarketSimulator(7, DEFAULT_SYMBOLS, START)
    assert _closes(alone, "ETHUSDT") == _closes(together, "ETHUSDT")


def test_starting_prices_are_realistic() -> None:
    sim = MarketSimulator(42, DEFAULT_SYMBOLS, START)
    for symbol in DEFAULT_SYMBOLS:
        first = float(sim.bars(symbol)[0].open)
        assert first == pytest.approx(PROFILES[symbol].start_price, rel=0.01)
    assert float(sim.bars("BTCUSDT")[0].open) == pytest.approx(95_000, rel=0.01)
    assert float(sim.bars("DOGEUSDT")[0].open) == pytest.approx(0.35, rel=0.01)


async def test_snapshot_data_has_100_consistent_five_minute_candles() -> None:
    source = SimulatorSource(42, DEFAULT_SYMBOLS, START)
    data = await source.snapshot_data(START)
    assert [s.symbol for s in data.symbols] == list(DEFAULT_SYMBOLS)
    for s in data.symbols:
        tick = PROFILES[s.symbol].tick_size
        assert len(s.candles) == 100
        times = [c.open_time for c in s.candles]
        assert all(t.minute % 5 == 0 and t.second == 0 for t in times)
        assert all(b - a == timedelta(minutes=5) for a, b in itertools.pairwise(times))
        # Only closed candles: the last one ended before the start minute.
        assert times[-1] + timedelta(minutes=5) <= START
        for c in s.candles:
            assert isinstance(c.close, Decimal)
            assert Decimal(0) < c.low <= min(c.open, c.close)
            assert max(c.open, c.close) <= c.high
            assert c.volume > 0
            assert c.close % tick == 0 and c.high % tick == 0 and c.low % tick == 0
        assert s.last_price > 0 and s.mark_price > 0
        assert s.low_24h <= s.last_price <= s.high_24h
        assert abs(s.funding_rate) <= Decimal("0.00075")
        assert s.next_funding_time == datetime(2025, 3, 1, 16, tzinfo=UTC)


async def test_each_tick_is_one_minute_step() -> None:
    source = SimulatorSource(42, ("BTCUSDT",), START)
    before = await source.snapshot_data(START)
    prices = [await source.tick(START) for _ in range(5)]
    after = await source.snapshot_data(START)
    for (price,) in prices:
        assert price.symbol == "BTCUSDT"
        assert price.low <= price.last_price <= price.high
    assert after.symbols[0].last_price == prices[-1][0].last_price
    # Five one-minute steps complete the five-minute candle that was forming.
    assert after.symbols[0].candles[-1].open_time == datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    assert before.symbols[0].candles[-1].open_time == datetime(2025, 3, 1, 11, 55, tzinfo=UTC)


def test_next_funding_time_is_the_next_eight_hour_mark() -> None:
    assert next_funding_time(datetime(2025, 1, 1, 0, 0, tzinfo=UTC)) == datetime(
        2025, 1, 1, 8, tzinfo=UTC
    )
    assert next_funding_time(datetime(2025, 1, 1, 15, 59, tzinfo=UTC)) == datetime(
        2025, 1, 1, 16, tzinfo=UTC
    )
    assert next_funding_time(datetime(2025, 1, 1, 23, 30, tzinfo=UTC)) == datetime(
        2025, 1, 2, 0, tzinfo=UTC
    )


async def test_snapshot_data_has_the_instrument_filters_and_4h_context() -> None:
    instruments = InstrumentTable().overridden({"BTCUSDT": {"min_notional": "100"}})
    source = SimulatorSource(42, ("BTCUSDT", "DOGEUSDT"), START, instruments)
    data = await source.snapshot_data(START)
    btc, doge = data.symbols
    assert btc.filters is not None and btc.filters.tick_size == Decimal("0.1")
    assert btc.filters.min_notional == Decimal(100)
    assert doge.filters is not None
    assert doge.filters.step_size == InstrumentTable()["DOGEUSDT"].step_size
    assert len(btc.candles_4h) == 60
    times = [c.open_time for c in btc.candles_4h]
    assert all(t.hour % 4 == 0 and t.minute == 0 for t in times)
    assert all(b - a == timedelta(hours=4) for a, b in itertools.pairwise(times))
    assert times[-1] + timedelta(hours=4) <= START
