"""Turning a trader's answer into the Decision the agent publishes."""

from __future__ import annotations

from datetime import datetime

from services.agent.strategy import HOLD
from services.agent.trader import Outcome, TraderAnswer
from services.common.contracts import Decision, MarketSnapshot, Portfolio
from services.common.lineup import AgentSpec

__all__ = ["Outcome", "forced_hold", "make_decision"]


def make_decision(
    spec: AgentSpec,
    snapshot: MarketSnapshot,
    answer: TraderAnswer,
    decided_at: datetime,
    portfolio: Portfolio | None = None,
) -> Decision:
    prompt = answer.prompt
    return Decision(
        decision_id=Decision.make_id(snapshot.cycle_id, spec.id),
        cycle_id=snapshot.cycle_id,
        agent_id=spec.id,
        decided_at=decided_at,
        decision_deadline=snapshot.decision_deadline,
        actions=answer.actions or (HOLD,),
        reasoning=answer.reasoning,
        model=spec.model,
        prompt_sha256=prompt.sha256 if prompt else None,
        prompt_version=prompt.version if prompt else None,
        prompt=prompt.text if prompt else None,
        raw_response=answer.raw_response,
        thinking=answer.thinking,
        usage=answer.usage,
        error=answer.error,
        portfolio=portfolio,
    )


def forced_hold(
    spec: AgentSpec, snapshot: MarketSnapshot, decided_at: datetime, outcome: Outcome, error: str
) -> Decision:
    """The answer of an agent that could not decide: it never stays silent."""
    return make_decision(spec, snapshot, TraderAnswer.hold(outcome, error), decided_at)
