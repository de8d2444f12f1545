"""The WebSocket protocol of SPEC.md: every message is ``{type, data, timestamp}``."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.common.contracts import (
    AccountView,
    Action,
    Decision,
    LeaderboardEntry,
    MarketSnapshot,
    PositionView,
    SchedulerStatus,
    Usage,
)
from services.gateway.agents import AgentState


class EventType(StrEnum):
    """Every ``type`` SPEC.md lists, plus ``agent_status`` (an agent enabled or disabled)."""

    CONNECTION = "connection"
    INITIAL_DATA = "initial_data"
    MARKET_SNAPSHOT = "market_snapshot"
    SCHEDULER_STATUS = "scheduler_status"
    CYCLE_START = "cycle_start"
    CYCLE_COMPLETE = "cycle_complete"
    LLM_DECISION = "llm_decision"
    POSITION_UPDATE = "position_update"
    ACCOUNT_UPDATE = "account_update"
    ERROR = "error"
    AGENT_STATUS = "agent_status"


class WsMessage(BaseModel):
    """One message to a WebSocket client."""

    model_config = ConfigDict(frozen=True)

    type: EventType
    data: dict[str, Any]
    timestamp: datetime


class ConnectionData(BaseModel):
    """``data`` of the ``connection`` message."""

    model_config = ConfigDict(frozen=True)

    client_id: str
    server_time: datetime


class InitialData(BaseModel):
    """``data`` of ``initial_data``: what answered in time; a missing part is null."""

    model_config = ConfigDict(frozen=True)

    accounts: tuple[AccountView, ...] | None = None
    leaderboard: tuple[LeaderboardEntry, ...] | None = None
    positions: tuple[PositionView, ...] | None = None
    scheduler_status: SchedulerStatus | None = None
    market_snapshot: MarketSnapshot | None = None
    agents: tuple[AgentState, ...] = ()
    unavailable: dict[str, str] = Field(
        default_factory=dict, description="Part -> why it is null (the service did not answer)."
    )


class DecisionShown(BaseModel):
    """``data`` of ``llm_decision``: what the dashboard shows of an agent's decision.

    The prompt, the model's raw answer and thinking, and the portfolio it decided on are
    most of a decision's size and no browser reads them: they stay on
    ``GET /trading/decisions``.
    """

    model_config = ConfigDict(frozen=True, from_attributes=True)

    decision_id: str
    cycle_id: str
    agent_id: str
    decided_at: datetime
    model: str
    actions: tuple[Action, ...]
    reasoning: str
    error: str | None = Field(description="Why this is a forced HOLD, if it is.")
    usage: Usage | None = Field(description="Tokens and cost of the model call, if any.")

    @classmethod
    def of(cls, decision: Decision) -> DecisionShown:
        return cls.model_validate(decision)
