"""Operations contracts: cycles, agents' heartbeats and model calls, the scheduler's control."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from services.common.contracts.base import AgentId, Message, Money, Text

# ---------------------------------------------------------------- cycle


class CycleStarted(Message):
    """``arena.cycle.started``: the market opens a trading cycle."""

    cycle_id: str
    sequence: int = Field(ge=1)
    started_at: datetime
    decision_deadline: datetime
    symbols: tuple[str, ...]
    agents: tuple[AgentId, ...] = Field(
        default=(), description="Agents expected to decide in this cycle (the active line-up)."
    )
    data_time: bool = Field(
        default=False,
        description="A replay: times, the decision deadline and every timestamp derived from "
        "them follow the data, and answers are waited for instead of racing the wall clock.",
    )


class AgentOutcome(Message):
    agent_id: AgentId
    status: Literal["applied", "missed"]
    opened: int = 0
    closed: int = 0
    rejected: int = 0


class CycleCompleted(Message):
    """``arena.cycle.completed``: every verdict applied, or the deadline passed."""

    cycle_id: str
    completed_at: datetime
    duration_seconds: float
    timed_out: bool
    outcomes: tuple[AgentOutcome, ...]


# ---------------------------------------------------------------- agents


class Heartbeat(Message):
    """``arena.agent.heartbeat.<agent>``: the agent is alive, or disabled and why."""

    agent_id: AgentId
    display_name: str
    provider: str
    model: str
    status: Literal["ok", "disabled"]
    reason: Text | None = None
    at: datetime


class LlmCall(Message):
    """``arena.llm.call.<agent>``: one call to a model provider, stored in ``llm_api_calls``."""

    call_id: str
    agent_id: AgentId
    cycle_id: str
    provider: str
    model: Text
    response_time_ms: int = Field(ge=0)
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)
    estimated_cost: Money = Field(ge=0)
    success: bool
    error: Text | None = None
    called_at: datetime
    attempt: int = Field(default=1, ge=1, description="1 for the first try of a cycle's call.")
    status_code: int | None = Field(default=None, description="The provider's HTTP status.")


# ---------------------------------------------------------------- scheduler (request-reply)


class SchedulerCommand(Message):
    """Body of ``arena.scheduler.status|trigger|pause|resume`` requests."""

    requested_by: str = "unknown"


class SchedulerStatus(Message):
    running: bool
    paused: bool
    source: str
    cycle_seconds: float
    current_cycle_id: str | None
    next_run_at: datetime | None
    cycles_started: int
    cycles_completed: int
    cycles_failed: int
    cycles_skipped: int
    last_duration_seconds: float | None
    mean_duration_seconds: float | None
