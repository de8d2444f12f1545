"""The random walk of one simulated symbol, one minute at a time (pure).

Each symbol has its own generator (so its walk does not depend on the other symbols),
its own volatility, a hidden volatility regime that switches now and then, rare jumps,
a share of the market factor it is given, and a small mean-reverting funding rate.
Prices are quantized to the symbol's tick.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from services.market.bars import KlineRow

MINUTES_PER_DAY = 24 * 60
# Volatility multipliers of the hidden regimes: calm, normal, stormy.
REGIMES = (0.6, 1.0, 2.4)
REGIME_SWITCH_PER_MINUTE = 1 / 240
JUMP_PER_MINUTE = 1 / 1500
MARKET_CORRELATION = 0.7
FUNDING_MEAN = 0.0001
FUNDING_LIMIT = 0.00075
FUNDING_QUANTUM = Decimal("0.000001")


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
class Bar(KlineRow):
    """One simulated minute of one symbol: a kline, its mark and its funding rate."""

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


@dataclass(frozen=True)
class WalkerState:
    """Everything one symbol's walk carries from one minute to the next."""

    rng: tuple[Any, ...]  # random.Random.getstate()
    price: float
    close: Decimal
    regime: int
    funding: float
    basis: float


@dataclass(frozen=True)
class WalkState:
    """The whole walk after ``steps`` minutes (the day of history included)."""

    steps: int
    market: tuple[Any, ...]
    walkers: tuple[WalkerState, ...]


class Walker:
    """The random walk of one symbol; its own generator keeps it independent of the others."""

    def __init__(self, seed: int, symbol: str, profile: SymbolProfile) -> None:
        self._rng = random.Random(f"{seed}:{symbol}")
        self._profile = profile
        self._sigma = profile.daily_volatility / math.sqrt(MINUTES_PER_DAY)
        self._price = profile.start_price
        self._close = quantize(profile.start_price, profile.tick_size)
        self._regime = 1
        self._funding = FUNDING_MEAN
        self._basis = 0.0

    def save(self) -> WalkerState:
        return WalkerState(
            self._rng.getstate(), self._price, self._close, self._regime, self._funding, self._basis
        )

    def load(self, state: WalkerState) -> None:
        self._rng.setstate(state.rng)
        self._price, self._close, self._regime = state.price, state.close, state.regime
        self._funding, self._basis = state.funding, state.basis

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
            open_time,
            open_,
            high,
            low,
            close,
            volume,
            mark=quantize(self._price * (1 + self._basis), tick),
            funding_rate=Decimal(round(self._funding / float(FUNDING_QUANTUM))) * FUNDING_QUANTUM,
        )
