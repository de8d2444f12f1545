"""EMA-cross momentum: long while EMA20 is above EMA50, out when it crosses back."""

from __future__ import annotations

from services.agent.baselines.config import Baseline
from services.agent.baselines.sizing import Plan, atr_stop
from services.agent.strategy import Answer
from services.common.contracts import MarketSnapshot, Portfolio, PositionSide

LEVERAGE = 3


class EmaCross(Baseline):
    def decide(self, snapshot: MarketSnapshot, portfolio: Portfolio) -> Answer:
        book = self.book(portfolio)
        plan = Plan(book)
        for s in self._config.tradable(snapshot):
            fast, slow = s.indicators.ema_20, s.indicators.ema_50
            if fast is None or slow is None:
                continue
            side = book.open_sides.get(s.symbol)
            if side == PositionSide.LONG and fast < slow:
                plan.close(s.symbol, f"{s.symbol}: EMA20 {fast:.6g} crossed below EMA50 {slow:.6g}")
            elif side == PositionSide.SHORT and fast > slow:
                plan.close(s.symbol, f"{s.symbol}: short against an up-trend, closing")
            elif side is None and fast > slow:
                plan.open(
                    PositionSide.LONG,
                    s.symbol,
                    s.last_price,
                    preferred_margin=self._config.mid_margin,
                    preferred_leverage=LEVERAGE,
                    stop_distance=atr_stop(s.indicators.atr_14),
                    confidence=_confidence(fast, slow),
                    note=f"{s.symbol}: EMA20 {fast:.6g} above EMA50 {slow:.6g}, going long",
                )
        return plan.decision("no EMA cross calls for a change")


def _confidence(fast: float, slow: float) -> float:
    # The wider the gap between the averages, the firmer the trend.
    gap = abs(fast - slow) / abs(slow) if slow else 0.0
    return round(min(0.9, 0.5 + gap * 50), 3)
