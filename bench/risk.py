"""Risk validation speed: one decision of three actions, in-process (SPEC.md: < 1 ms).

Run: ``.venv/bin/python -m bench.risk [iterations]``.
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from services.common.contracts import (
    AccountView,
    Action,
    Decision,
    Portfolio,
    PositionSide,
    PositionStatus,
    PositionView,
    TradeAction,
)
from services.common.settings import DEFAULT_SYMBOLS, TradingLimits
from services.risk.validator import Validator

NOW = datetime(2025, 1, 1, tzinfo=UTC)
PRICES = {"BTCUSDT": Decimal(95000), "ETHUSDT": Decimal(3400), "SOLUSDT": Decimal(180)}


def _portfolio() -> Portfolio:
    account = AccountView(
        agent_id="bench", display_name="bench", provider="baseline", model_name="x",
        balance=Decimal(70), margin_used=Decimal(20), equity=Decimal(91),
        total_pnl=Decimal(-9), realized_pnl=Decimal(0), unrealized_pnl=Decimal(1),
        total_fees=Decimal("0.1"), total_trades=1, winning_trades=0, losing_trades=0,
        open_positions=1, is_active=True,
    )  # fmt: skip
    sol = PositionView(
        position_id="p", agent_id="bench", symbol="SOLUSDT", side=PositionSide.LONG,
        status=PositionStatus.OPEN, entry_price=Decimal(180), current_price=Decimal(181),
        quantity=Decimal("0.5"), leverage=5, margin=Decimal(20), unrealized_pnl=Decimal("0.5"),
        opened_at=NOW,
    )  # fmt: skip
    return Portfolio(account=account, positions=(sol,))


def _decision() -> Decision:
    return Decision(
        decision_id="c1:bench",
        cycle_id="c1",
        agent_id="bench",
        decided_at=NOW,
        decision_deadline=NOW + timedelta(minutes=4),
        actions=(
            Action(action=TradeAction.BUY, symbol="BTCUSDT", margin_usd=Decimal(20), leverage=5,
                   stop_loss=Decimal(93000), take_profit=Decimal(99000)),
            Action(action=TradeAction.SELL, symbol="ETHUSDT", margin_usd=Decimal(15), leverage=3,
                   stop_loss=Decimal(3500), take_profit=Decimal(3200)),
            Action(action=TradeAction.CLOSE, symbol="SOLUSDT"),
        ),
    )  # fmt: skip


def main() -> None:
    iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    validator = Validator.for_symbols(TradingLimits(), DEFAULT_SYMBOLS)
    decision, portfolio = _decision(), _portfolio()
    for _ in range(500):  # warm-up
        validator.validate(decision, portfolio, NOW, PRICES)
    samples = []
    started = time.perf_counter()
    for _ in range(iterations):
        t0 = time.perf_counter_ns()
        validator.validate(decision, portfolio, NOW, PRICES)
        samples.append((time.perf_counter_ns() - t0) / 1000)
    elapsed = time.perf_counter() - started
    q = statistics.quantiles(samples, n=100)
    print("risk: validate one decision (3 actions), in-process")
    print(f"{'iterations':<14}{'p50 us':>10}{'p99 us':>10}{'max us':>10}{'decisions/s':>14}")
    print(
        f"{iterations:<14}{q[49]:>10.1f}{q[98]:>10.1f}{max(samples):>10.1f}"
        f"{iterations / elapsed:>14.0f}"
    )
    print(f"target p99 < 1000 us: {'met' if q[98] < 1000 else 'NOT met'}")


if __name__ == "__main__":
    main()
