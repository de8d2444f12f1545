"""A seeded, reproducible market: one-minute bars from a random walk per symbol.

Pure: the walk depends on the seed and the symbol only (the start time only dates the
bars), so the same seed gives the same prices on every run and machine. The symbols
(:mod:`services.market.walk`) share a market factor, so alts follow BTC; rare jumps make
stops, targets and liquidations really happen.

A walk is a function of (seed, symbols, start, steps), so a restarted market rebuilds it
by walking again. Walking a month of minutes takes seconds, so the walk also keeps its
generators' state once a simulated day (:meth:`MarketSimulator.checkpoint`): resuming
from one only replays the minutes that the visible windows (24 h of bars, ten days of
4-hour candles) are built from, whatever the walk's age.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections import deque
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from services.common.contracts import Candle, SymbolFilters, SymbolTicker, TickPrice
from services.common.funding import next_funding_time
from services.common.instruments import InstrumentTable
from services.market.bars import candle_of
from services.market.local_source import LocalSource
from services.market.simulator_state import (
    SimulatorPosition,
    decode_checkpoint,
    decode_position,
    encode_checkpoint,
)
from services.market.source import (
    Checkpoint,
    JsonObject,
    MarketData,
    PositionMismatch,
    SymbolData,
)
from services.market.walk import (
    MINUTES_PER_DAY,
    Bar,
    SymbolProfile,
    Walker,
    WalkState,
    profile_for,
    quantize,
)

log = logging.getLogger(__name__)

MINUTE = timedelta(minutes=1)
HISTORY_MINUTES = MINUTES_PER_DAY  # enough for the 24 h statistics and 100 five-minute candles
CANDLE_MINUTES = 5
CANDLE_COUNT = 100
CONTEXT_HOURS = 4
CONTEXT_COUNT = 60  # 4-hour candles of warm-up history, enough for EMA 50

PERCENT_QUANTUM = Decimal("0.001")
# Generator states are kept once a simulated day. A walk resumed from one replays at
# least REBUILD_STEPS minutes, so that every window a snapshot shows is rebuilt from the
# walk's own bars: 60 closed 4-hour candles, the partial one at the checkpoint and the
# one forming (the 24 h of minute bars fit inside).
CHECKPOINT_EVERY = 24 * 60
REBUILD_STEPS = (CONTEXT_COUNT + 2) * CONTEXT_HOURS * 60


class MarketSimulator:
    """Several symbols walking together; one :meth:`step` is one simulated minute."""

    def __init__(
        self,
        seed: int,
        symbols: Iterable[str],
        start: datetime,
        instruments: InstrumentTable | None = None,
        *,
        resume_from: WalkState | None = None,
    ) -> None:
        """A walk from ``start``, or, with ``resume_from``, a walk with empty windows that
        :meth:`resumed` fills by walking on."""
        self.symbols = tuple(symbols)
        self._instruments = instruments or InstrumentTable()
        self._market_rng = random.Random(f"{seed}:market")
        self._walkers = {s: Walker(seed, s, profile_for(s)) for s in self.symbols}
        self._bars: dict[str, deque[Bar]] = {s: deque(maxlen=HISTORY_MINUTES) for s in self.symbols}
        minute = start.replace(second=0, microsecond=0)
        self._next_open = minute - HISTORY_MINUTES * MINUTE
        self._steps = 0
        self._kept: deque[WalkState] = deque()
        self._forming: dict[str, list[Bar]] = {s: [] for s in self.symbols}
        self._forming_bucket: datetime | None = None
        self._context: dict[str, deque[Candle]] = {
            s: deque(maxlen=CONTEXT_COUNT) for s in self.symbols
        }
        if resume_from is not None:
            self._load(resume_from)
            return
        for s in self.symbols:
            self._context[s].extend(_context_history(seed, s, profile_for(s), self._next_open))
        for _ in range(HISTORY_MINUTES):
            self.step()

    @classmethod
    def resumed(
        cls,
        seed: int,
        symbols: Iterable[str],
        start: datetime,
        *,
        minutes: int,
        instruments: InstrumentTable | None = None,
        checkpoint: WalkState | None = None,
    ) -> MarketSimulator:
        """The walk ``minutes`` steps after ``start``, as if it had never stopped.

        From ``checkpoint`` (a state :meth:`checkpoint` returned for the same seed,
        symbols and start) when it is old enough, else from the beginning.
        """
        target = HISTORY_MINUTES + minutes
        usable = checkpoint is not None and 0 <= checkpoint.steps <= target - REBUILD_STEPS
        sim = cls(seed, symbols, start, instruments, resume_from=checkpoint if usable else None)
        while sim._steps < target:
            sim.step()
        return sim

    @property
    def minutes(self) -> int:
        """Steps walked since ``start`` (the day of history before it not counted)."""
        return self._steps - HISTORY_MINUTES

    def checkpoint(self) -> WalkState | None:
        """The newest kept state that :meth:`resumed` can start from now and for one more
        simulated day, so a saved checkpoint stays usable while later steps are saved."""
        limit = self._steps - REBUILD_STEPS - CHECKPOINT_EVERY
        usable = [k for k in self._kept if k.steps <= limit]
        return usable[-1] if usable else None

    def _keep(self) -> None:
        self._kept.append(
            WalkState(
                self._steps,
                self._market_rng.getstate(),
                tuple(w.save() for w in self._walkers.values()),
            )
        )
        limit = self._steps - REBUILD_STEPS - CHECKPOINT_EVERY
        while len(self._kept) > 1 and self._kept[1].steps <= limit:
            self._kept.popleft()

    def _load(self, state: WalkState) -> None:
        if len(state.walkers) != len(self._walkers):
            raise ValueError(
                f"the walk state has {len(state.walkers)} symbols, not {len(self._walkers)}"
            )
        self._market_rng.setstate(state.market)
        for walker, saved in zip(self._walkers.values(), state.walkers, strict=True):
            walker.load(saved)
        self._steps = state.steps
        self._next_open += state.steps * MINUTE

    def step(self) -> dict[str, Bar]:
        """Advance one minute; returns each symbol's new bar."""
        if self._steps % CHECKPOINT_EVERY == 0:
            self._keep()
        self._steps += 1
        shock = self._market_rng.gauss(0.0, 1.0)
        # Every symbol's bar has the same open time: one 4-hour bucket check per step.
        bucket = _context_start(self._next_open)
        closed = self._forming_bucket if bucket != self._forming_bucket else None
        self._forming_bucket = bucket
        bars = {}
        for symbol, walker in self._walkers.items():
            bar = walker.step(self._next_open, shock)
            self._bars[symbol].append(bar)
            forming = self._forming[symbol]
            if closed is not None and forming:
                self._context[symbol].append(candle_of(closed, forming))
                forming.clear()
            forming.append(bar)
            bars[symbol] = bar
        self._next_open += MINUTE
        return bars

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
            candle_of(start, bars) for start, bars in buckets.items() if len(bars) == CANDLE_MINUTES
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
            ticker=SymbolTicker(
                symbol=symbol,
                last_price=last.close,
                mark_price=last.mark,
                price_change_pct_24h=change.quantize(PERCENT_QUANTUM),
                volume_24h=sum((b.volume for b in day), Decimal(0)),
                high_24h=max(b.high for b in day),
                low_24h=min(b.low for b in day),
                funding_rate=last.funding_rate,
                next_funding_time=next_funding_time(now),
            ),
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


class SimulatorSource(LocalSource):
    """The simulator as a :class:`~services.market.source.MarketSource`: one tick, one minute.

    Resumable: its position is (seed, symbols, start, minutes walked), plus a checkpoint
    of the walk once a simulated day so resuming stays quick however long it ran.
    """

    def __init__(
        self,
        seed: int,
        symbols: Iterable[str],
        start: datetime,
        instruments: InstrumentTable | None = None,
    ) -> None:
        self._seed = seed
        self._symbols = tuple(symbols)
        self._start = start
        self._instruments = instruments
        self._simulator = MarketSimulator(seed, self._symbols, start, instruments)
        self._checkpoint: Checkpoint | None = None

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

    def _position(self) -> SimulatorPosition:
        return SimulatorPosition(
            seed=self._seed,
            symbols=self._symbols,
            start=self._start,
            minutes=self._simulator.minutes,
        )

    def checkpoint(self) -> Checkpoint | None:
        walk = self._simulator.checkpoint()
        if walk is None:
            return None
        if self._checkpoint is None or self._checkpoint.key != walk.steps:
            self._checkpoint = Checkpoint(walk.steps, encode_checkpoint(self._position(), walk))
        return self._checkpoint

    async def resume(self, position: JsonObject, checkpoint: JsonObject | None) -> None:
        saved = decode_position(position)
        if (saved.seed, saved.symbols) != (self._seed, self._symbols):
            raise PositionMismatch(
                f"the saved walk is seed {saved.seed} on {', '.join(saved.symbols)}, "
                f"not seed {self._seed} on {', '.join(self._symbols)}"
            )
        walk = None
        if checkpoint is not None:
            try:
                walk = decode_checkpoint(checkpoint, saved)
            except ValueError as exc:  # pydantic's ValidationError included
                log.warning("simulator checkpoint unusable, walking from the start: %s", exc)
        began = time.perf_counter()
        # Seconds of pure Python: off the event loop, so the NATS connection stays served.
        self._simulator = await asyncio.to_thread(
            MarketSimulator.resumed,
            self._seed,
            self._symbols,
            saved.start,
            minutes=saved.minutes,
            instruments=self._instruments,
            checkpoint=walk,
        )
        self._start = saved.start
        self._checkpoint = None
        log.info(
            "simulator resumed at minute %d of its walk from %s in %.2fs (%s)",
            saved.minutes,
            saved.start.isoformat(),
            time.perf_counter() - began,
            f"from the checkpoint at step {walk.steps}" if walk else "walked from the start",
        )
