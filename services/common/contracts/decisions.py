"""Decision contracts: an agent's answer to a cycle, risk's verdict on it, the stored record."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import Field, model_validator

from services.common.contracts.base import AgentId, Message, Money, Price, Text
from services.common.contracts.books import Portfolio
from services.common.contracts.queries import PagedQuery, PagedReply


class TradeAction(StrEnum):
    BUY = "BUY"
    SELL = "SELL"
    CLOSE = "CLOSE"
    HOLD = "HOLD"


class Action(Message):
    action: TradeAction
    symbol: Text | None = None
    margin_usd: Money | None = None
    leverage: int | None = None
    stop_loss: Price | None = None
    take_profit: Price | None = None
    confidence: float | None = Field(default=None, ge=0, le=1)
    invalidation: Text | None = None


class Usage(Message):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: Money = Decimal(0)


# ``Decision.error`` starts with this when the model's answer could not be parsed; the
# ledger counts those as parse failures (other errors: disabled agent, provider down).
PARSE_ERROR_PREFIX = "parse error: "


class Decision(Message):
    """``arena.decision.proposed.<agent>``: one agent's answer to one cycle."""

    decision_id: str = Field(description='"<cycle_id>:<agent_id>"')
    cycle_id: str
    agent_id: AgentId
    decided_at: datetime
    decision_deadline: datetime
    actions: tuple[Action, ...]
    reasoning: Text = ""
    model: Text = ""
    prompt_sha256: str | None = None
    usage: Usage | None = None
    error: Text | None = Field(default=None, description="Why this is a forced HOLD, if it is.")
    prompt_version: str | None = Field(default=None, description="Prompt template version.")
    prompt: Text | None = Field(default=None, description="The full prompt sent (audit, replay).")
    raw_response: Text | None = Field(default=None, description="The model's raw answer text.")
    thinking: Text | None = Field(
        default=None, description="The model's separate reasoning text (DeepSeek, <think>)."
    )
    portfolio: Portfolio | None = Field(
        default=None,
        description="The portfolio the agent decided on, as the ledger answered it: risk "
        "judges against it instead of asking again (the ledger re-checks every limit "
        "against its books when it applies the verdict); none: risk asks the ledger.",
    )

    @staticmethod
    def make_id(cycle_id: str, agent_id: str) -> str:
        return f"{cycle_id}:{agent_id}"

    @model_validator(mode="after")
    def _id_names_cycle_and_agent(self) -> Decision:
        # The ledger keeps one decision per id: a made-up id could shadow another's.
        if self.decision_id != self.make_id(self.cycle_id, self.agent_id):
            raise ValueError(
                f"decision_id must be '<cycle_id>:<agent_id>' "
                f"({self.make_id(self.cycle_id, self.agent_id)!r}), got {self.decision_id!r}"
            )
        return self


class Reason(Message):
    """A machine-readable rejection reason with a human message."""

    code: str
    message: Text


class ActionResult(Message):
    index: int = Field(ge=0)
    action: Action
    approved: bool
    reasons: tuple[Reason, ...] = ()


class Verdict(Message):
    """``arena.decision.verdict.<agent>``: risk's answer, one result per action."""

    verdict_id: str
    decided_at: datetime
    decision: Decision
    results: tuple[ActionResult, ...]


# ---------------------------------------------------------------- queries (request-reply)


class DecisionRecord(Message):
    """A decision as the ledger stored it, with risk's results and the ledger's outcome."""

    decision: Decision
    results: tuple[ActionResult, ...]
    applied_at: datetime | None


class DecisionsQuery(PagedQuery):
    pass


class Decisions(PagedReply):
    decisions: tuple[DecisionRecord, ...]
