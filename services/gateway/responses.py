"""Response models the gateway composes itself; the rest are contracts as sent."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, computed_field

from services.common.contracts import Indicators, SchedulerStatus, SymbolTicker
from services.gateway.agents import AgentState


class View(BaseModel):
    model_config = ConfigDict(frozen=True)


class TradingStatus(View):
    """``/trading/status``: the scheduler, the accounts and the agents at a glance."""

    scheduler: SchedulerStatus | None
    market_source: str | None
    accounts: int | None
    total_equity: Decimal | None
    agents: tuple[AgentState, ...]
    disabled_agents: tuple[AgentState, ...]
    unavailable: dict[str, str] = Field(
        default_factory=dict, description="Part -> why it is missing (a service did not answer)."
    )


class AgentsView(View):
    agents: tuple[AgentState, ...]


class SymbolPrice(View):
    symbol: str
    last_price: Decimal
    mark_price: Decimal
    at: datetime | None
    source: str


class Ticker(SymbolTicker):
    """``/market/ticker/{symbol}``: the symbol's ticker in the latest snapshot."""

    cycle_id: str
    taken_at: datetime


class SymbolIndicators(View):
    symbol: str
    cycle_id: str
    taken_at: datetime
    indicators: Indicators


class SchedulerStats(SchedulerStatus):
    """``/scheduler/stats``: the scheduler's status with its success rate."""

    # Its own JSON carries the computed success rate back: reading it is not an error.
    model_config = ConfigDict(frozen=True, extra="ignore")

    @computed_field(description="completed / started, null before any cycle")  # type: ignore[prop-decorator]
    @property
    def success_rate(self) -> float | None:
        started = self.cycles_started
        return self.cycles_completed / started if started else None


class NextRun(View):
    """``/scheduler/next-run``."""

    next_run_at: datetime | None
    seconds_until: float | None
    paused: bool
    running: bool
    cycle_seconds: float


class WsStats(View):
    """``/ws/stats``: clients now, what was sent, who was turned away, and the limits."""

    connected_clients: int
    max_clients: int = Field(description="ARENA_WS_MAX_CLIENTS: more are refused.")
    messages_sent: int
    clients_dropped: int = Field(description="Clients disconnected for not keeping up.")
    clients_refused: int = Field(description="Connections refused: the server was full.")
    origins_refused: int = Field(description="Browser pages refused: origin not allowed.")
    queue_size: int = Field(description="ARENA_WS_QUEUE_SIZE: messages queued per client.")
    client_buffer_bytes: int = Field(description="ARENA_WS_CLIENT_BUFFER_BYTES per client.")
    send_timeout_seconds: float = Field(description="ARENA_WS_SEND_TIMEOUT per message.")
