"""How an agent decides, whatever is behind it: a snapshot and a portfolio in, an answer out,
and the Decision the agent publishes for it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from services.agent.prompt import Prompt
from services.agent.strategy import HOLD, Strategy
from services.common.contracts import (
    Action,
    Decision,
    LlmCall,
    MarketSnapshot,
    Portfolio,
    Usage,
)
from services.common.lineup import AgentSpec


class Outcome(StrEnum):
    """How a cycle's decision came about (the ``outcome`` label of the decisions metric)."""

    DECIDED = "decided"
    STRATEGY_ERROR = "strategy_error"
    PORTFOLIO_UNAVAILABLE = "portfolio_unavailable"
    DISABLED = "disabled"
    PROVIDER_ERROR = "provider_error"
    PARSE_ERROR = "parse_error"


@dataclass(frozen=True)
class TraderAnswer:
    actions: tuple[Action, ...]
    outcome: Outcome = Outcome.DECIDED
    reasoning: str = ""
    error: str | None = None
    prompt: Prompt | None = None
    raw_response: str | None = None
    thinking: str | None = None
    usage: Usage | None = None
    calls: tuple[LlmCall, ...] = ()
    parse_failures: int = 0

    @classmethod
    def hold(cls, outcome: Outcome, error: str) -> TraderAnswer:
        """The answer of an agent that could not decide: it never stays silent."""
        return cls((HOLD,), outcome, error=error)

    def decision(
        self,
        spec: AgentSpec,
        snapshot: MarketSnapshot,
        decided_at: datetime,
        portfolio: Portfolio | None = None,
    ) -> Decision:
        """This answer as ``spec``'s decision for ``snapshot``'s cycle."""
        prompt = self.prompt
        return Decision(
            decision_id=Decision.make_id(snapshot.cycle_id, spec.id),
            cycle_id=snapshot.cycle_id,
            agent_id=spec.id,
            decided_at=decided_at,
            decision_deadline=snapshot.decision_deadline,
            actions=self.actions or (HOLD,),
            reasoning=self.reasoning,
            model=spec.model,
            prompt_sha256=prompt.sha256 if prompt else None,
            prompt_version=prompt.version if prompt else None,
            prompt=prompt.text if prompt else None,
            raw_response=self.raw_response,
            thinking=self.thinking,
            usage=self.usage,
            error=self.error,
            portfolio=portfolio,
        )


class Trader(Protocol):
    @property
    def disabled_reason(self) -> str | None:
        """Why this agent does not call its model now (answers HOLD), or None."""
        ...

    @property
    def reads_candles(self) -> bool:
        """Whether ``decide`` reads the candles (the snapshot event carries none)."""
        ...

    async def decide(
        self, snapshot: MarketSnapshot, portfolio: Portfolio, *, delivery: int = 1
    ) -> TraderAnswer:
        """``delivery`` counts how often the bus has handed this snapshot over (1 = first)."""
        ...

    async def close(self) -> None: ...


class BaselineTrader:
    """A pure baseline strategy as a trader: it never fails to be reachable."""

    def __init__(self, strategy: Strategy) -> None:
        self._strategy = strategy

    @property
    def disabled_reason(self) -> str | None:
        return None

    @property
    def reads_candles(self) -> bool:
        return False  # baselines read the indicators

    async def decide(
        self, snapshot: MarketSnapshot, portfolio: Portfolio, *, delivery: int = 1
    ) -> TraderAnswer:
        try:
            result = self._strategy.decide(snapshot, portfolio)
        except Exception as exc:
            error = f"strategy failed: {type(exc).__name__}: {exc}"
            return TraderAnswer.hold(Outcome.STRATEGY_ERROR, error)
        return TraderAnswer(result.actions or (HOLD,), reasoning=result.reasoning)

    async def close(self) -> None:
        return None


class DisabledTrader:
    """An agent that cannot run as configured (no key): it answers HOLD with the reason."""

    def __init__(self, reason: str) -> None:
        self._reason = reason

    @property
    def disabled_reason(self) -> str | None:
        return self._reason

    @property
    def reads_candles(self) -> bool:
        return False

    async def decide(
        self, snapshot: MarketSnapshot, portfolio: Portfolio, *, delivery: int = 1
    ) -> TraderAnswer:
        return TraderAnswer.hold(Outcome.DISABLED, f"disabled: {self._reason}")

    async def close(self) -> None:
        return None
