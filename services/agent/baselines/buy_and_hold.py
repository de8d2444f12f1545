"""Buy and hold: one BTC long at the start, kept whatever happens. The market's own return."""

from __future__ import annotations

from services.agent.baselines.config import Baseline
from services.agent.baselines.sizing import Plan
from services.agent.strategy import Answer, hold
from services.common.contracts import MarketSnapshot, Portfolio, PositionSide

SYMBOL = "BTCUSDT"
LEVERAGE = 1


class BuyAndHold(Baseline):
    def decide(self, snapshot: MarketSnapshot, portfolio: Portfolio) -> Answer:
        book = self.book(portfolio)
        if SYMBOL in book.open_sides:
            return hold(f"holding {SYMBOL}")
        # "Once": a closed trade means the position was bought and has since ended.
        if portfolio.account.total_trades > 0:
            return hold(f"{SYMBOL} was bought once already; buy-and-hold does not re-enter")
        btc = next((s for s in self._config.tradable(snapshot) if s.symbol == SYMBOL), None)
        if btc is None:
            return hold(f"{SYMBOL} is not in this snapshot")
        plan = Plan(book)
        # No target (it holds), and the widest stop the liquidation distance allows.
        plan.open(
            PositionSide.LONG,
            SYMBOL,
            btc.last_price,
            preferred_margin=self._config.limits.max_margin_usd,
            preferred_leverage=LEVERAGE,
            stop_distance=btc.last_price,
            note=f"buying {SYMBOL} to hold",
            confidence=0.5,
            take_profit=False,
        )
        return plan.decision(f"cannot open {SYMBOL} within the limits")
