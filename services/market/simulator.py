"""A seeded, reproducible market: one-minute bars from a random walk per symbol.

Pure: the walk depends on the seed and the symbol only (the start time only dates the
bars), so the same seed gives the same prices on every run and machine. Each symbol has
its own volatility, a hidden volatility regime that switches now and then, rare jumps (so
stops, targets and liquidations really happen), a shared market factor (alts follow
BTC) and a small mean-reverting funding rate. Prices are quantized to the symbol's tick.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from services.common.contracts import Candle, SymbolFilters, TickPrice
from services.common.instruments import InstrumentTable
from services.market.source import MarketData, SymbolData, next_funding_time

MINUTE = timedelta(minutes=1)
HISTORY_MINUTES = 24 * 60  # enough for the 24 h statistics and 100 five-minute candles
CANDLE_MINUTES = 5
CANDLE_COUNT = 100
CONTEXT_HOURS = 4
CONTEXT_COUNT = 60  # 4-hour candles of warm-up history, enough for EMA 50

# Volatility multipliers of the hidden regimes: calm, normal, stormy.
REGIMES = (0.6, 1.0, 2.4)
REGIME_SWITCH_PER_MINUTE = 1 / 240
JUMP_PER_MINUTE = 1 / 1500
MARKET_CORRELATION = 0.7
FUNDING_MEAN = 0.0001
FUNDING_LIMIT = 0.00075
FUNDING_QUANTUM = Decimal("0.000001")
PERCENT_QUANTUM = Decimal("0.001")


@dataclass(frozen=True)
class SymbolProfile:
    start_price: float
    tick_size: Decimal
    volume_step: Decimal
    daily_volatility: float
    volume_per_minute: float


# Starting price, tick size (as Binance USD-M lists it), volume step, volatility, volume.
# Quantity steps and minimum notionals come from the arena's instrument table, so the
# snapshot's filters are the ones risk and the ledger enforce.
PROFILES: dict[str, SymbolProfile] = {
    "BTCUSDT": SymbolProfile(95_000.0, Decimal("0.1"), Decimal("0.001"), 0.030, 110.0),
    "ETHUSDT": SymbolProfile(3_400.0, Decimal("0.01"), Decimal("0.001"), 0.040, 1_500.0),
    "SOLUSDT": SymbolProfile(180.0, Decimal("0.01"), Decimal("0.01"), 0.055, 9_000.0),
    "BNBUSDT": SymbolProfile(650.0, Decimal("0.01"), Decimal("0.01"), 0.032, 700.0),
    "XRPUSDT": SymbolProfile(2.3, Decimal("0.0001"), Decimal("0.1"), 0.055, 450_000.0),
    "DOGEUSDT": SymbolProfile(0.35, Decimal("0.00001"), Decimal("1"), 0.065, 2_500_000.0),
}
# Symbols without a profile still trade, on a neutral one.
GENERIC_PROFILE = SymbolProfile(10.0, Decimal("0.001"), Decimal("0.1"), 0.05, 50_000.0)


def profile_for(symbol: str) -> SymbolProfile:
    return PROFILES.get(symbol, GENERIC_PROFILE)


@dataclass(frozen=True)
class Bar:
    """One simulated minute of one symbol."""

    open_time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    mark: Decimal
    funding_rate: Decimal


def quantize(value: float, step: Decimal, rounding: str | None = None) -> Decimal:
    """``value`` on the grid of ``step`` (nearest, or floor/ceiling), never below one step."""
    units = value / float(step)
    if rounding == ROUND_FLOOR:
        count = math.floor(units)
    elif rounding == ROUND_CEILING:
        count = math.ceil(units)
    else:
        count = round(units)
    return max(count, 1) * step


class _Walker:
    """The random walk of one symbol; its own generator keeps it independent of the others."""

    def __init__(self, seed: int, symbol: str, profile: SymbolProfile) -> None:
        self._rng = random.Random(f"{seed}:{symbol}")
        self._profile = profile
        self._sigma = profile.daily_volatility / math.sqrt(HISTORY_MINUTES)
        self._price = profile.start_price
        self._close = quantize(profile.start_price, profile.tick_size)
        self._regime = 1
        self._funding = FUNDING_MEAN
        self._basis = 0.0

    def step(self, open_time: datetime, market_shock: float) -> Bar:
        rng, profile = self._rng, self._profile
        if rng.random() < REGIME_SWITCH_PER_MINUTE:
            self._regime = rng.randrange(len(REGIMES))
        sigma = self._sigma * REGIMES[self._regime]
        own = rng.gauss(0.0, 1.0)
        shock = MARKET_CORRELATION * market_shock + math.sqrt(1 - MARKET_CORRELATION**2) * own
        log_return = sigma * shock
        if rng.random() < JUMP_PER_MINUTE:
            log_return += rng.gauss(0.0, profile.daily_volatility * 0.6)
        previous = self._price
        self._price = previous * math.exp(log_return)
        wick_up = abs(rng.gauss(0.0, sigma * 0.6))
        wick_down = abs(rng.gauss(0.0, sigma * 0.6))

        tick = profile.tick_size
        open_ = self._close
        close = quantize(self._price, tick)
        high = max(
            quantize(max(previous, self._price) * math.exp(wick_up), tick, ROUND_CEILING),
            open_,
            close,
        )
        low = min(
            quantize(min(previous, self._price) * math.exp(-wick_down), tick, ROUND_FLOOR),
            open_,
            close,
        )
        self._close = close

        activity = 1.0 + 0.3 * abs(log_return) / self._sigma
        raw_volume = profile.volume_per_minute * (0.4 + rng.random()) * activity
        volume = quantize(raw_volume, profile.volume_step, ROUND_FLOOR)

        self._funding += 0.02 * (FUNDING_MEAN - self._funding) + rng.gauss(0.0, 0.000004)
        self._funding = min(max(self._funding, -FUNDING_LIMIT), FUNDING_LIMIT)
        self._basis += 0.2 * -self._basis + rng.gauss(0.0, 0.00005)
        return Bar(
            open_time=open_time,
            open=open_,
            high=high,
            low=low,
            close=close,
            volume=volume,
            mark=quantize(self._price * (1 + self._basis), tick),
            funding_rate=Decimal(round(self._funding / float(FUNDING_QUANTUM))) * FUNDING_QUANTUM,
        )


class MarketSimulator:
    """Several symbols walking together; one :meth:`step` is one simulated minute."""

    def __init__(
        self,
        seed: int,
        symbols: Iterable[str],
        start: datetime,
        instruments: InstrumentTable | None = None,
    ) -> None:
        self.symbols = tuple(symbols)
        self._instruments = instruments or InstrumentTable()
        self._market_rng = random.Random(f"{seed}:market")
        self._walkers = {s: _Walker(seed, s, profile_for(s)) for s in self.symbols}
        self._bars: dict[str, deque[Bar]] = {s: deque(maxlen=HISTORY_MINUTES) for s in self.symbols}
        minute = start.replace(second=0, microsecond=0)
        self._next_open = minute - HISTORY_MINUTES * MINUTE
        self._context: dict[str, deque[Candle]] = {
            s: deque(
                _context_history(seed, s, profile_for(s), self._next_open), maxlen=CONTEXT_COUNT
            )
            for s in self.symbols
        }
        self._forming: dict[str, list[Bar]] = {s: [] for s in self.symbols}
        for _ in range(HISTORY_MINUTES):
            self.step()

    def step(self) -> dict[str, Bar]:
        """Advance one minute; returns each symbol's new bar."""
        shock = self._market_rng.gauss(0.0, 1.0)
        bars = {}
        for symbol, walker in self._walkers.items():
            bar = walker.step(self._next_open, shock)
            self._bars[symbol].append(bar)
            self._aggregate_context(symbol, bar)
            bars[symbol] = bar
        self._next_open += MINUTE
        return bars

    def _aggregate_context(self, symbol: str, bar: Bar) -> None:
        forming = self._forming[symbol]
        if forming and _context_start(bar.open_time) != _context_start(forming[0].open_time):
            self._context[symbol].append(_candle(_context_start(forming[0].open_time), forming))
            forming.clear()
        forming.append(bar)

    def candles_4h(self, symbol: str) -> tuple[Candle, ...]:
        """Closed 4-hour candles, oldest first (warm-up history, then the walk's own)."""
        return tuple(self._context[symbol])

    def bars(self, symbol: str) -> Sequence[Bar]:
        """The last 24 h of one-minute bars of ``symbol``, oldest first."""
        return tuple(self._bars[symbol])

    def candles(self, symbol: str, count: int = CANDLE_COUNT) -> tuple[Candle, ...]:
        """The last ``count`` complete five-minute candles (the one still forming is left out)."""
        recent = list(self._bars[symbol])[-CANDLE_MINUTES * (count + 1) :]
        buckets: dict[datetime, list[Bar]] = {}
        for bar in recent:
            start = bar.open_time - timedelta(minutes=bar.open_time.minute % CANDLE_MINUTES)
            buckets.setdefault(start, []).append(bar)
        complete = [
            _candle(start, bars) for start, bars in buckets.items() if len(bars) == CANDLE_MINUTES
        ]
        return tuple(complete[-count:])

    def _filters(self, symbol: str) -> SymbolFilters:
        instrument = self._instruments[symbol]
        return SymbolFilters(
            tick_size=instrument.tick_size,
            step_size=instrument.step_size,
            min_notional=instrument.min_notional,
        )

    def symbol_data(self, symbol: str, now: datetime) -> SymbolData:
        day = self._bars[symbol]
        last = day[-1]
        first_open = day[0].open
        change = (last.close - first_open) / first_open * 100
        return SymbolData(
            symbol=symbol,
            last_price=last.close,
            mark_price=last.mark,
            price_change_pct_24h=change.quantize(PERCENT_QUANTUM),
            volume_24h=sum((b.volume for b in day), Decimal(0)),
            high_24h=max(b.high for b in day),
            low_24h=min(b.low for b in day),
            funding_rate=last.funding_rate,
            next_funding_time=next_funding_time(now),
            candles=self.candles(symbol),
            candles_4h=self.candles_4h(symbol),
            filters=self._filters(symbol),
        )


def _context_start(at: datetime) -> datetime:
    return at.replace(hour=at.hour - at.hour % CONTEXT_HOURS, minute=0, second=0, microsecond=0)


def _context_history(seed: int, symbol: str, profile: SymbolProfile, end: datetime) -> list[Candle]:
    """Coarse 4-hour candles before the minute walk begins, walked backwards from its start.

    Only the 4 h indicators read them; a separate generator keeps the minute walk unchanged.
    """
    rng = random.Random(f"{seed}:{symbol}:4h")
    sigma = profile.daily_volatility * math.sqrt(CONTEXT_HOURS / 24)
    tick, step = profile.tick_size, timedelta(hours=CONTEXT_HOURS)
    close = profile.start_price
    start = _context_start(end)
    candles: list[Candle] = []
    for k in range(1, CONTEXT_COUNT + 1):
        open_ = close * math.exp(-rng.gauss(0.0, sigma))
        high = max(open_, close) * math.exp(abs(rng.gauss(0.0, sigma * 0.4)))
        low = min(open_, close) * math.exp(-abs(rng.gauss(0.0, sigma * 0.4)))
        candles.append(
            Candle(
                open_time=start - k * step,
                open=quantize(open_, tick),
                high=quantize(high, tick, ROUND_CEILING),
                low=quantize(low, tick, ROUND_FLOOR),
                close=quantize(close, tick),
                volume=quantize(
                    profile.volume_per_minute * 240 * (0.5 + rng.random()), profile.volume_step
                ),
            )
        )
        close = open_
    candles.reverse()
    return candles


def _candle(start: datetime, bars: Sequence[Bar]) -> Candle:
    return Candle(
        open_time=start,
        open=bars[0].open,
        high=max(b.high for b in bars),
        low=min(b.low for b in bars),
        close=bars[-1].close,
        volume=sum((b.volume for b in bars), Decimal(0)),
    )


class SimulatorSource:
    """The simulator as a :class:`~services.market.source.MarketSource`: one tick, one minute."""

    def __init__(
        self,
        seed: int,
        symbols: Iterable[str],
        start: datetime,
        instruments: InstrumentTable | None = None,
    ) -> None:
        self._simulator = MarketSimulator(seed, symbols, start, instruments)

    @property
    def name(self) -> str:
        return "simulator"

    async def snapshot_data(self, now: datetime) -> MarketData:
        sim = self._simulator
        return MarketData(symbols=tuple(sim.symbol_data(s, now) for s in sim.symbols))

    async def tick(self, now: datetime) -> tuple[TickPrice, ...]:
        bars = self._simulator.step()
        return tuple(
            TickPrice(symbol=s, last_price=b.close, mark_price=b.mark, high=b.high, low=b.low)
            for s, b in bars.items()
        )

    async def aclose(self) -> None:
        return None
