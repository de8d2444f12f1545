"""Risk validation speed: one decision of three actions, in-process.

Targets: p99 < 50 µs for one decision (SPEC.md asks < 1 ms; the arena holds it to 50 µs
so risk never shows in a cycle). The reference, measured in the same run, is building the
verdict message alone from the same results: the part no rule can save.

Run: ``.venv/bin/python -m bench.risk [iterations]``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bench.measures import Measure
from bench.sampling import percentile
from bench.table import print_measures
from services.common.contracts import (
    AccountView,
    Action,
    Decision,
    Portfolio,
    PositionSide,
    PositionStatus,
    PositionView,
    TradeAction,
    Verdict,
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


TARGET_P99_US = 50.0


def _samples(action: Callable[[], object], iterations: int) -> tuple[list[float], list[float]]:
    """Wall and thread-CPU microseconds of each call (CPU time leaves out preemption)."""
    for _ in range(min(500, iterations)):  # warm-up
        action()
    wall, cpu = [], []
    for _ in range(iterations):
        w0, c0 = time.perf_counter_ns(), time.thread_time_ns()
        action()
        cpu.append((time.thread_time_ns() - c0) / 1000)
        wall.append((time.perf_counter_ns() - w0) / 1000)
    return wall, cpu


def measure(quick: bool = False, iterations: int | None = None) -> list[Measure]:
    count = iterations or (2000 if quick else 20000)
    validator = Validator.for_symbols(TradingLimits(), DEFAULT_SYMBOLS)
    decision, portfolio = _decision(), _portfolio()
    verdict = validator.validate(decision, portfolio, NOW, PRICES)

    def bare() -> Verdict:
        return Verdict(
            verdict_id=verdict.verdict_id, decided_at=NOW, decision=decision,
            results=verdict.results,
        )  # fmt: skip

    wall, cpu = _samples(lambda: validator.validate(decision, portfolio, NOW, PRICES), count)
    ref_wall, ref_cpu = _samples(bare, count)
    name, ref = "validate one decision (3 actions)", "Verdict alone"
    return [
        Measure("risk", f"{name} p50", percentile(wall, 50), "µs",
                reference=percentile(ref_wall, 50), reference_name=ref),
        Measure("risk", f"{name} p99", percentile(wall, 99), "µs", target=TARGET_P99_US,
                reference=percentile(ref_wall, 99), reference_name=ref),
        Measure("risk", f"{name} p99 CPU time", percentile(cpu, 99), "µs",
                reference=percentile(ref_cpu, 99), reference_name=ref),
    ]  # fmt: skip


def main() -> None:
    iterations = int(sys.argv[1]) if len(sys.argv) > 1 else None
    print_measures(measure(iterations=iterations))


if __name__ == "__main__":
    main()
