"""Applies the rules to every action of a decision: one verdict, one result per action."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from services.common.contracts import ActionResult, Decision, Portfolio, Verdict
from services.common.settings import TradingLimits
from services.risk.rules import RULES, ActionContext, Prior, Rule, judge


@dataclass(frozen=True)
class Validator:
    """Pure: the same decision, portfolio and limits always give the same verdict."""

    limits: TradingLimits
    symbols: frozenset[str]
    rules: tuple[Rule, ...] = RULES

    @classmethod
    def for_symbols(
        cls, limits: TradingLimits, symbols: Iterable[str], rules: tuple[Rule, ...] = RULES
    ) -> Validator:
        return cls(limits, frozenset(symbols), rules)

    def validate(self, decision: Decision, portfolio: Portfolio, decided_at: datetime) -> Verdict:
        earlier: list[Prior] = []
        results: list[ActionResult] = []
        for index, action in enumerate(decision.actions):
            context = ActionContext(
                action=action,
                portfolio=portfolio,
                limits=self.limits,
                symbols=self.symbols,
                earlier=tuple(earlier),
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
