"""Applies the rules to every action of a decision: one verdict, one result per action."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from services.common.contracts import (
    ActionResult,
    Decision,
    Portfolio,
    Reason,
    TradeAction,
    Verdict,
)
from services.common.instruments import InstrumentTable
from services.common.rules import RULES, ActionContext, Prior, Rule, judge
from services.common.settings import TradingLimits


@dataclass(frozen=True)
class Validator:
    """Pure: the same decision, portfolio and limits always give the same verdict."""

    limits: TradingLimits
    symbols: frozenset[str]
    rules: tuple[Rule, ...] = RULES
    instruments: InstrumentTable = field(default_factory=InstrumentTable)

    @classmethod
    def for_symbols(
        cls,
        limits: TradingLimits,
        symbols: Iterable[str],
        rules: tuple[Rule, ...] = RULES,
        instruments: InstrumentTable | None = None,
    ) -> Validator:
        return cls(limits, frozenset(symbols), rules, instruments or InstrumentTable())

    def validate(
        self,
        decision: Decision,
        portfolio: Portfolio | None,
        decided_at: datetime,
        prices: Mapping[str, Decimal] | None = None,
        cycle_deadline: datetime | None = None,
    ) -> Verdict:
        """``decided_at``: risk's own "now", also what the deadline is checked against.

        ``prices`` and ``cycle_deadline`` come from the cycle's snapshot as the market
        announced it; only when the cycle is unknown does the decision's own (agent-written)
        deadline stand in. ``portfolio`` may be None only for a decision that
        :func:`trades_nothing` (no rule looks at a HOLD).
        """
        deadline = cycle_deadline or decision.decision_deadline
        earlier: list[Prior] = []
        results: list[ActionResult] = []
        for index, action in enumerate(decision.actions):
            if action.action is TradeAction.HOLD:
                results.append(ActionResult(index=index, action=action, approved=True))
                earlier.append(Prior(action, True))
                continue
            if portfolio is None:
                raise ValueError(f"decision {decision.decision_id} trades: its portfolio is needed")
            context = ActionContext(
                action=action,
                portfolio=portfolio,
                limits=self.limits,
                symbols=self.symbols,
                earlier=tuple(earlier),
                prices=prices or {},
                instruments=self.instruments,
                decided_at=decided_at,
                deadline=deadline,
            )
            reasons = judge(context, self.rules)
            approved = not reasons
            results.append(
                ActionResult(index=index, action=action, approved=approved, reasons=reasons)
            )
            earlier.append(Prior(action, approved))
        return Verdict(
            verdict_id=decision.decision_id,
            decided_at=decided_at,
            decision=decision,
            results=tuple(results),
        )


def trades_nothing(decision: Decision) -> bool:
    """Every action a HOLD (or none at all): a verdict that needs no portfolio."""
    return all(action.action is TradeAction.HOLD for action in decision.actions)


LATE = "late"


def late_verdict(decision: Decision, decided_at: datetime, why: str) -> Verdict:
    """The verdict on a decision that could not be judged before its cycle ended.

    Every trade is rejected with ``why`` (a HOLD trades nothing and stands), so the
    decision still reaches the books, recorded as late with its reason.
    """
    results = tuple(
        ActionResult(
            index=index,
            action=action,
            approved=action.action == TradeAction.HOLD,
            reasons=() if action.action == TradeAction.HOLD else (Reason(code=LATE, message=why),),
        )
        for index, action in enumerate(decision.actions)
    )
    return Verdict(
        verdict_id=decision.decision_id, decided_at=decided_at, decision=decision, results=results
    )
