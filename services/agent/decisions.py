"""Turning a strategy's answer, or the lack of one, into the Decision the agent publishes."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from services.agent.strategy import HOLD, Strategy, StrategyResult
from services.common.contracts import Decision, MarketSnapshot, Portfolio
from services.common.lineup import AgentSpec


class Outcome(StrEnum):
    """How a cycle's decision came about (the ``outcome`` label of the decisions metric)."""

    DECIDED = "decided"
    STRATEGY_ERROR = "strategy_error"
    PORTFOLIO_UNAVAILABLE = "portfolio_unavailable"


def make_decision(
    spec: AgentSpec,
    snapshot: MarketSnapshot,
    result: StrategyResult,
    decided_at: datetime,
    error: str | None = None,
) -> Decision:
    return Decision(
        decision_id=Decision.make_id(snapshot.cycle_id, spec.id),
        cycle_id=snapshot.cycle_id,
        agent_id=spec.id,
        decided_at=decided_at,
        decision_deadline=snapshot.decision_deadline,
        actions=result.actions or (HOLD,),
        reasoning=result.reasoning,
        model=spec.model,
        error=error,
    )


def forced_hold(
    spec: AgentSpec, snapshot: MarketSnapshot, decided_at: datetime, error: str
) -> Decision:
    """The answer of an agent that could not decide: it never stays silent."""
    return make_decision(spec, snapshot, StrategyResult((HOLD,), ""), decided_at, error=error)


def decide(
    strategy: Strategy,
    spec: AgentSpec,
    snapshot: MarketSnapshot,
    portfolio: Portfolio,
    decided_at: datetime,
) -> tuple[Decision, Outcome]:
    """Run the strategy; whatever goes wrong in it becomes a HOLD carrying the error."""
    try:
        result = strategy.decide(snapshot, portfolio)
        return make_decision(spec, snapshot, result, decided_at), Outcome.DECIDED
    except Exception as exc:
        error = f"strategy failed: {type(exc).__name__}: {exc}"
        return forced_hold(spec, snapshot, decided_at, error), Outcome.STRATEGY_ERROR
