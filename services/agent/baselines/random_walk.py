"""Seeded random: the floor any strategy must clear. Same seed and cycle, same choice."""

from __future__ import annotations

import random
from decimal import Decimal

from services.agent.baselines.config import Baseline
from services.agent.baselines.sizing import Plan, atr_stop
from services.agent.strategy import Answer
from services.common.contracts import MarketSnapshot, Portfolio, PositionSide

CLOSE_PROBABILITY = 0.3
OPEN_PROBABILITY = 0.5
MAX_RANDOM_LEVERAGE = 5


class RandomTrader(Baseline):
    def decide(self, snapshot: MarketSnapshot, portfolio: Portfolio) -> Answer:
        # A string seed is hashed with SHA-512, so it is stable across processes and runs.
        rng = random.Random(f"{self._config.seed}:{self._config.agent_id}:{snapshot.cycle_id}")
        limits = self._config.limits
        book = self.book(portfolio)
        plan = Plan(book)
        for symbol in sorted(book.open_sides):
            if rng.random() < CLOSE_PROBABILITY:
                plan.close(symbol, f"{symbol}: the dice say close")
        candidates = [s for s in self._config.tradable(snapshot) if plan.can_open(s.symbol)]
        if candidates and rng.random() < OPEN_PROBABILITY:
            s = rng.choice(candidates)
            side = rng.choice((PositionSide.LONG, PositionSide.SHORT))
            cents = rng.randint(int(limits.min_margin_usd * 100), int(limits.max_margin_usd * 100))
            plan.open(
                side,
                s.symbol,
                s.last_price,
                preferred_margin=Decimal(cents) / 100,
                preferred_leverage=rng.randint(1, MAX_RANDOM_LEVERAGE),
                stop_distance=atr_stop(s.indicators.atr_14),
                confidence=round(rng.random(), 2),
                note=f"{s.symbol}: the dice say {side.value.lower()}",
            )
        return plan.decision("the dice say hold")
