"""Query contracts shared by the ledger's reads: paging, errors, standings, equity, checks."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import Field

from services.common.contracts.base import AgentId, Message, Money, Text


class Page(Message):
    """Pagination of list queries: newest first, ``offset`` rows skipped."""

    limit: int = Field(default=50, ge=1, le=500)
    offset: int = Field(default=0, ge=0)


class PagedQuery(Message):
    """A list query: one agent's rows or everyone's (``agent_id`` none), one page of them."""

    agent_id: AgentId | None = None
    page: Page = Page()


class PagedReply(Message):
    """A page of a list query's answer: ``total`` counts every row that matched."""

    total: int


class AgentFigures(Message):
    """The figures of one agent both the leaderboard and its statistics show."""

    agent_id: AgentId
    display_name: str
    equity: Money
    return_pct: Decimal
    realized_pnl: Money
    unrealized_pnl: Money
    total_fees: Money
    total_trades: int
    win_rate: Decimal


class LeaderboardQuery(Message):
    pass


class LeaderboardEntry(AgentFigures):
    rank: int
    open_positions: int
    total_funding: Money = Decimal(0)
    llm_cost_usd: Money = Decimal(0)
    net_return_pct: Decimal = Field(
        default=Decimal(0), description="Return after subtracting the LLM cost."
    )
    parse_failures: int = 0
    rejections: int = 0


class Leaderboard(Message):
    entries: tuple[LeaderboardEntry, ...]


class EquityPoint(Message):
    agent_id: AgentId
    at: datetime
    equity: Money
    balance: Money
    margin_used: Money
    unrealized_pnl: Money
    total_fees: Money
    total_funding: Money


# An answer of this many points stays well inside NATS's 1 MB message (about 250 bytes each).
MAX_EQUITY_POINTS = 2000


class EquityQuery(Message):
    """The equity curve of one agent or all, from ``since``.

    At most ``points`` points per agent: an agent with more snapshots in the window has the
    window cut into ``points`` equal spans and the last snapshot of each span returned (its
    newest snapshot always among them). At most ``limit`` points in all, the newest kept.
    """

    agent_id: AgentId | None = None
    since: datetime | None = None
    limit: int = Field(default=2000, ge=1, le=20000)
    points: int = Field(default=1000, ge=2, le=MAX_EQUITY_POINTS)
    format: Literal["points", "columns"] = Field(
        default="points",
        description="points: an EquitySeries; columns: an EquityColumns (the same points).",
    )


class EquitySeries(Message):
    points: tuple[EquityPoint, ...]


class AgentEquity(Message):
    """One agent's points of an :class:`EquityColumns`, oldest first: ``at[i]``, ``equity[i]``."""

    agent_id: AgentId
    at: tuple[datetime, ...]
    equity: tuple[Money, ...]


class EquityColumns(Message):
    """The points of an :class:`EquitySeries`, compact: per agent (by id), two lists."""

    agents: tuple[AgentEquity, ...]


class Interval(Message):
    """A figure and its 95 % interval."""

    value: float
    lower: float
    upper: float


class AgentStats(AgentFigures):
    """Everything the leaderboard shows for one agent, each recomputable from the rows."""

    total_funding: Money
    llm_cost_usd: Money
    net_return_pct: Decimal
    winning_trades: int
    losing_trades: int
    average_win: Money | None
    average_loss: Money | None
    max_drawdown_pct: Decimal
    sharpe_ratio: Decimal | None
    parse_failures: int
    rejections_by_reason: dict[str, int]
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_p50_ms: float | None = Field(
        default=None, description="Median response time of the agent's model calls."
    )
    latency_p95_ms: float | None = None
    return_interval_pct: Interval | None = Field(
        default=None,
        description="Return compounded over the completed cycles so far, in percent, with its "
        "95 % stationary-bootstrap interval (null before two cycles).",
    )
    alpha_pct: Interval | None = Field(
        default=None,
        description="Alpha against holding BTC (BTCUSDT's mark price at each cycle), in percent "
        "a year (the OLS intercept of per-cycle returns times the cycles in a year of the "
        "configured cycle length), with its 95 % interval.",
    )
    beta: float | None = Field(
        default=None, description="Slope of the agent's per-cycle returns on BTC's."
    )
    evidence_cycles: int = Field(
        default=0, description="Completed cycles the return, alpha and beta are computed from."
    )


class StatsQuery(Message):
    pass


class Stats(Message):
    agents: tuple[AgentStats, ...]


class VerifyQuery(Message):
    """``full``: check the whole decision chain and every proposal, not only what came
    after the last clean check (the checkpoint)."""

    full: bool = False


class VerifyReport(Message):
    ok: bool
    checked_accounts: int
    checked_decisions: int
    problems: tuple[str, ...]
    full: bool = True
    """Whether the whole chain was checked (False: only the rows after ``checked_from``)."""
    checked_from: int = 0
    """The chain position the check started after (0: from the first decision)."""


class ErrorReply(Message):
    """Reply of a request that could not be answered; ``code`` is machine-readable."""

    code: Literal["not_found", "bad_request", "unavailable", "internal"]
    message: Text
