"""The simulator: reproducible, realistic shape, Decimal prices on the symbol's tick grid."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.common.funding import next_funding_time
from services.common.instruments import InstrumentTable
from services.common.settings import DEFAULT_SYMBOLS
from services.market.simulator import (
    CHECKPOINT_EVERY,
    HISTORY_MINUTES,
    REBUILD_STEPS,
    MarketSimulator,
    SimulatorSource,
)
from services.market.source import JsonObject, PositionMismatch
from services.market.walk import PROFILES

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
        assert s.ticker.last_price > 0 and s.ticker.mark_price > 0
        assert s.ticker.low_24h <= s.ticker.last_price <= s.ticker.high_24h
        assert abs(s.ticker.funding_rate) <= Decimal("0.00075")
        assert s.ticker.next_funding_time == datetime(2025, 3, 1, 16, tzinfo=UTC)


async def test_each_tick_is_one_minute_step() -> None:
    source = SimulatorSource(42, ("BTCUSDT",), START)
    before = await source.snapshot_data(START)
    prices = [await source.tick(START) for _ in range(5)]
    after = await source.snapshot_data(START)
    for (price,) in prices:
        assert price.symbol == "BTCUSDT"
        assert price.low <= price.last_price <= price.high
    assert after.symbols[0].ticker.last_price == prices[-1][0].last_price
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


def _round_trip(data: JsonObject) -> JsonObject:
    """Through JSON text, as the state bucket stores it."""
    loaded = json.loads(json.dumps(data))
    assert isinstance(loaded, dict)
    return loaded


async def test_a_resumed_walk_is_the_walk_that_never_stopped() -> None:
    # One symbol keeps the ~18,000 minutes a checkpoint needs quick to walk.
    symbols = ("ETHUSDT",)
    walk = SimulatorSource(7, symbols, START)
    checkpoint = None
    minutes = REBUILD_STEPS + 2 * CHECKPOINT_EVERY
    for _ in range(minutes):
        await walk.tick(START)
        checkpoint = walk.checkpoint() or checkpoint
    assert checkpoint is not None
    # The newest one a day of later steps can still resume from.
    assert minutes + HISTORY_MINUTES - REBUILD_STEPS - 2 * CHECKPOINT_EVERY < checkpoint.key
    assert checkpoint.key <= minutes + HISTORY_MINUTES - REBUILD_STEPS - CHECKPOINT_EVERY
    position = _round_trip(walk.position())

    later = datetime(2026, 6, 1, tzinfo=UTC)
    from_checkpoint = SimulatorSource(7, symbols, later)
    await from_checkpoint.resume(position, _round_trip(checkpoint.data))
    from_start = SimulatorSource(7, symbols, later)
    await from_start.resume(position, None)
    now = later
    for _ in range(3):
        expected = await walk.snapshot_data(now)
        assert await from_checkpoint.snapshot_data(now) == expected
        assert await from_start.snapshot_data(now) == expected
        tick = await walk.tick(now)
        assert await from_checkpoint.tick(now) == tick == await from_start.tick(now)
    assert from_checkpoint.position() == walk.position()


async def test_a_position_of_another_walk_is_refused_and_a_bad_checkpoint_only_slows() -> None:
    walk = SimulatorSource(7, ("BTCUSDT",), START)
    for _ in range(3):
        await walk.tick(START)
    position = walk.position()
    with pytest.raises(PositionMismatch, match="seed 7 on BTCUSDT, not seed 8"):
        await SimulatorSource(8, ("BTCUSDT",), START).resume(position, None)
    with pytest.raises(PositionMismatch, match="not seed 7 on BTCUSDT, ETHUSDT"):
        await SimulatorSource(7, ("BTCUSDT", "ETHUSDT"), START).resume(position, None)
    with pytest.raises(PositionMismatch, match="unreadable"):
        await SimulatorSource(7, ("BTCUSDT",), START).resume({"seed": "x"}, None)

    resumed = SimulatorSource(7, ("BTCUSDT",), START)
    await resumed.resume(position, {"steps": "garbage"})
    assert await resumed.tick(START) == await walk.tick(START)
