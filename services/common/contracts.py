"""Wire contracts: one immutable pydantic model per NATS message.

Money, prices and quantities are ``Decimal`` (JSON strings on the wire, so no
precision is lost between services). Every message carries ``schema_version``;
a consumer rejects (and dead-letters) a version it does not know.
``proto/`` is generated from these models by ``python -m services.common.proto``.

Text a model or a provider wrote is :data:`Text`: NUL and lone surrogates, which Postgres
and strict JSON refuse, become U+FFFD on the way in, whether the message is built here or
decoded from the wire (agents are not trusted), so such text always reaches the books.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic.config import ExtraValues

from services.common.text import clean_text, readable_json
from services.common.tokens import valid_token

SCHEMA_VERSION: Literal[1] = 1


def _agent_id(value: str) -> str:
    if not valid_token(value):
        raise ValueError("agent_id must be lower-case letters, digits, '-' or '_'")
    return value


AgentId = Annotated[str, AfterValidator(_agent_id)]
# Free text from outside (model answers, provider errors): always storable, visibly cleaned.
Text = Annotated[str, AfterValidator(clean_text)]
Money = Decimal
Price = Decimal
Quantity = Decimal


class Message(BaseModel):
    """Base of every message: immutable, strict about unknown fields, versioned."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def model_validate_json(
        cls,
        json_data: str | bytes | bytearray,
        *,
        strict: bool | None = None,
        extra: ExtraValues | None = None,
        context: Any | None = None,
        by_alias: bool | None = None,
        by_name: bool | None = None,
    ) -> Self:
        """Also reads JSON a strict parser refuses only for its text (lone surrogate escapes
        as Python's ``json`` writes them, bytes that are not UTF-8): that text arrives with
        U+FFFD in place of what could not be read, instead of the whole message being lost."""
        options: dict[str, Any] = {
            "strict": strict,
            "extra": extra,
            "context": context,
            "by_alias": by_alias,
            "by_name": by_name,
        }
        try:
            return super().model_validate_json(json_data, **options)
        except ValidationError as exc:
            if not any(error["type"] == "json_invalid" for error in exc.errors()):
                raise
        # Only a message that failed to parse pays for the second pass.
        return super().model_validate_json(readable_json(json_data), **options)


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


# ---------------------------------------------------------------- market


class Candle(Message):
    open_time: datetime
    open: Price
    high: Price
    low: Price
    close: Price
    volume: Decimal


class Indicators(Message):
    """Technical indicators of the latest closed candle; ``None`` when not computable yet."""

    rsi_7: float | None = None
    rsi_14: float | None = None
    ema_20: float | None = None
    ema_50: float | None = None
    macd: float | None = None
    macd_signal: float | None = None
    macd_hist: float | None = None
    bb_upper: float | None = None
    bb_middle: float | None = None
    bb_lower: float | None = None
    atr_14: float | None = None


class SymbolFilters(Message):
    """The exchange's trading filters of a symbol: price tick, quantity step, minimum notional."""

    tick_size: Price
    step_size: Quantity
    min_notional: Money


class SymbolSnapshot(Message):
    symbol: str
    last_price: Price
    mark_price: Price
    price_change_pct_24h: Decimal
    volume_24h: Decimal
    high_24h: Price
    low_24h: Price
    funding_rate: Decimal
    next_funding_time: datetime
    candles: tuple[Candle, ...]
    indicators: Indicators
    filters: SymbolFilters | None = Field(
        default=None, description="Exchange filters (binance exchangeInfo, simulator table)."
    )
    context_4h: Indicators | None = Field(
        default=None,
        description="Longer-term context: EMA 20/50, ATR 14, RSI 14 on 4-hour candles.",
    )


class MarketSnapshot(Message):
    """``arena.market.snapshot``: the one view of the market every agent gets for a cycle."""

    cycle_id: str
    taken_at: datetime
    decision_deadline: datetime
    source: str = Field(description="simulator, binance or replay")
    symbols: tuple[SymbolSnapshot, ...]
    unavailable: dict[str, str] = Field(
        default_factory=dict, description="Symbol -> reason it is missing from this snapshot."
    )
    candles_omitted: bool = Field(
        default=False,
        description="True on the wire: the event leaves the candles out (they are most of "
        "its size, and only a model's prompt reads them); ask arena.market.query.snapshot "
        "with the cycle id for the full snapshot.",
    )

    def symbol(self, symbol: str) -> SymbolSnapshot | None:
        return next((s for s in self.symbols if s.symbol == symbol), None)

    def without_candles(self) -> MarketSnapshot:
        """This snapshot as the event carries it: everything but the candles."""
        lean = tuple(s.model_copy(update={"candles": ()}) for s in self.symbols)
        return self.model_copy(update={"symbols": lean, "candles_omitted": True})


class TickPrice(Message):
    symbol: str
    last_price: Price
    mark_price: Price
    high: Price
    low: Price


class MarketTick(Message):
    """``arena.market.tick``: prices between cycles, for stops, targets and liquidations."""

    tick_id: str
    at: datetime
    prices: tuple[TickPrice, ...]


# ---------------------------------------------------------------- decisions


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


# ---------------------------------------------------------------- ledger events


class PositionSide(StrEnum):
    LONG = "LONG"
    SHORT = "SHORT"


class PositionStatus(StrEnum):
    OPEN = "OPEN"
    CLOSED = "CLOSED"
    LIQUIDATED = "LIQUIDATED"


class PositionView(Message):
    position_id: str
    agent_id: AgentId
    symbol: str
    side: PositionSide
    status: PositionStatus
    entry_price: Price
    current_price: Price
    quantity: Quantity
    leverage: int
    margin: Money
    unrealized_pnl: Money
    liquidation_price: Price | None = None
    stop_loss: Price | None = None
    take_profit: Price | None = None
    opened_at: datetime
    closed_at: datetime | None = None


class PositionEvent(Message):
    """``arena.ledger.position.<agent>``: a position opened or closed."""

    event_id: str
    kind: Literal["opened", "closed"]
    cycle_id: str | None
    position: PositionView
    exit_price: Price | None = None
    realized_pnl: Money | None = None
    fee: Money
    exit_reason: str | None = None
    at: datetime


class AccountView(Message):
    agent_id: AgentId
    display_name: str
    provider: str
    model_name: str
    balance: Money
    margin_used: Money
    equity: Money
    total_pnl: Money
    realized_pnl: Money
    unrealized_pnl: Money
    total_fees: Money
    total_trades: int
    winning_trades: int
    losing_trades: int
    open_positions: int
    is_active: bool


class AccountEvent(Message):
    """``arena.ledger.account.<agent>``: an account's balances changed."""

    event_id: str
    account: AccountView
    at: datetime


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


# ---------------------------------------------------------------- queries (request-reply)


class PortfolioQuery(Message):
    agent_id: AgentId


class Portfolio(Message):
    account: AccountView
    positions: tuple[PositionView, ...]


class AccountsQuery(Message):
    pass


class Accounts(Message):
    accounts: tuple[AccountView, ...]


class LeaderboardQuery(Message):
    pass


class LeaderboardEntry(Message):
    rank: int
    agent_id: AgentId
    display_name: str
    equity: Money
    return_pct: Decimal
    realized_pnl: Money
    unrealized_pnl: Money
    total_fees: Money
    total_trades: int
    win_rate: Decimal
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


class Page(Message):
    """Pagination of list queries: newest first, ``offset`` rows skipped."""

    limit: int = Field(default=50, ge=1, le=500)
    offset: int = Field(default=0, ge=0)


class PositionsQuery(Message):
    agent_id: AgentId | None = None
    status: Literal["open", "closed", "all"] = "open"
    page: Page = Page()


class Positions(Message):
    positions: tuple[PositionView, ...]
    total: int


class TradeView(Message):
    """One execution: an open (exit fields empty) or a close."""

    trade_id: str
    agent_id: AgentId
    position_id: str
    cycle_id: str | None
    symbol: str
    action: Literal["BUY", "SELL"]
    side: PositionSide
    entry_price: Price
    exit_price: Price | None
    quantity: Quantity
    realized_pnl: Money | None
    pnl_percentage: Decimal | None
    fees: Money
    exit_reason: str | None
    executed_at: datetime
    closed_at: datetime | None


class TradesQuery(Message):
    agent_id: AgentId | None = None
    page: Page = Page()


class Trades(Message):
    trades: tuple[TradeView, ...]
    total: int


class DecisionRecord(Message):
    """A decision as the ledger stored it, with risk's results and the ledger's outcome."""

    decision: Decision
    results: tuple[ActionResult, ...]
    applied_at: datetime | None


class DecisionsQuery(Message):
    agent_id: AgentId | None = None
    page: Page = Page()


class Decisions(Message):
    decisions: tuple[DecisionRecord, ...]
    total: int


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


class AgentStats(Message):
    """Everything the leaderboard shows for one agent, each recomputable from the rows."""

    agent_id: AgentId
    display_name: str
    equity: Money
    return_pct: Decimal
    realized_pnl: Money
    unrealized_pnl: Money
    total_fees: Money
    total_funding: Money
    llm_cost_usd: Money
    net_return_pct: Decimal
    total_trades: int
    winning_trades: int
    losing_trades: int
    win_rate: Decimal
    average_win: Money | None
    average_loss: Money | None
    max_drawdown_pct: Decimal
    sharpe_ratio: Decimal | None
    parse_failures: int
    rejections_by_reason: dict[str, int]


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


class PricesQuery(Message):
    pass


class Prices(Message):
    at: datetime | None
    source: str
    prices: tuple[TickPrice, ...]


class SymbolQuery(Message):
    symbol: str


class SymbolReply(Message):
    """The latest snapshot data of one symbol (ticker, funding, candles, indicators)."""

    cycle_id: str
    taken_at: datetime
    symbol: SymbolSnapshot


class SnapshotQuery(Message):
    cycle_id: str | None = Field(
        default=None,
        description="The full snapshot (candles included) of this cycle, while the market "
        "still holds it (its recent cycles); none: the latest.",
    )


class SnapshotReply(Message):
    snapshot: MarketSnapshot | None


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


class ErrorReply(Message):
    """Reply of a request that could not be answered; ``code`` is machine-readable."""

    code: Literal["not_found", "bad_request", "unavailable", "internal"]
    message: Text
