"""RSI mean reversion: long when oversold, short when overbought, out near the middle."""

from __future__ import annotations

from services.agent.baselines.config import Baseline
from services.agent.baselines.sizing import Plan, atr_stop
from services.agent.strategy import Answer
from services.common.contracts import MarketSnapshot, Portfolio, PositionSide

OVERSOLD = 30.0
OVERBOUGHT = 70.0
MIDDLE = 50.0
# "Near 50": close once RSI is back within this band of the middle (or beyond it).
EXIT_BAND = 5.0
LEVERAGE = 2


class RsiReversion(Baseline):
    def decide(self, snapshot: MarketSnapshot, portfolio: Portfolio) -> Answer:
        book = self.book(portfolio)
        plan = Plan(book)
        for s in self._config.tradable(snapshot):
            rsi = s.indicators.rsi_14
            if rsi is None:
                continue
            side = book.open_sides.get(s.symbol)
            if side == PositionSide.LONG and rsi >= MIDDLE - EXIT_BAND:
                plan.close(s.symbol, f"{s.symbol}: RSI14 {rsi:.1f} back near 50, long off")
            elif side == PositionSide.SHORT and rsi <= MIDDLE + EXIT_BAND:
                plan.close(s.symbol, f"{s.symbol}: RSI14 {rsi:.1f} back near 50, short off")
            elif side is None and (rsi < OVERSOLD or rsi > OVERBOUGHT):
                long = rsi < OVERSOLD
                plan.open(
                    PositionSide.LONG if long else PositionSide.SHORT,
                    s.symbol,
                    s.last_price,
                    preferred_margin=self._config.mid_margin,
                    preferred_leverage=LEVERAGE,
                    stop_distance=atr_stop(s.indicators.atr_14),
                    confidence=min(0.9, 0.5 + abs(rsi - MIDDLE) / 100),
                    note=f"{s.symbol}: RSI14 {rsi:.1f} "
                    + ("oversold, going long" if long else "overbought, going short"),
                )
        return plan.decision("RSI shows no extreme and no position to unwind")
