"""The channel catalogue: every NATS subject the arena uses, what travels on it and who
sends or answers it. Everything else is derived from here: the names in
:mod:`subjects`, ``proto/`` (AsyncAPI and JSON Schemas), the services' request
handlers (:meth:`Bus.serve_channel`), their questions (:meth:`Bus.ask`) and the
gateway's reads and relays.

Events are published through JetStream (stream ``ARENA``); requests are core NATS
request-reply, in their own subject tree so no stream captures them (a stream would
answer a request with a PubAck). Adding a request is one :class:`Request` here, one
handler registered with ``bus.serve_channel(channels.X, handler)``, and a test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from services.common import contracts as c
from services.common.tokens import subject_token

M = TypeVar("M", bound=c.Message)
Q = TypeVar("Q", bound=c.Message)
R = TypeVar("R", bound=c.Message)

# The per-agent token of an event's pattern: the publishing agent's id (line-up).
AGENT = "{agent_id}"

MARKET = "market"
AGENT_SERVICE = "agent"
RISK = "risk"
LEDGER = "ledger"


@dataclass(frozen=True)
class Event(Generic[M]):
    """An event subject. ``pattern`` may end in ``{agent_id}``: one subject per agent."""

    key: str  # the channel's name in proto/asyncapi.json
    pattern: str
    message: type[M]
    publisher: str  # the service that publishes it
    description: str

    @property
    def per_agent(self) -> bool:
        return AGENT in self.pattern

    @property
    def subject(self) -> str:
        """The subject to subscribe to: every agent's when the event is per agent."""
        return self.pattern.replace(AGENT, "*")

    def for_agent(self, agent_id: str) -> str:
        """The subject one agent publishes on (ValueError when ``agent_id`` would widen it)."""
        if not self.per_agent:
            raise ValueError(f"{self.pattern} is not a per-agent subject")
        return self.pattern.replace(AGENT, subject_token(agent_id))


@dataclass(frozen=True)
class Request(Generic[Q, R]):
    """A request-reply subject answered by ``server`` (a queue group: replicas share it)."""

    key: str
    subject: str
    request: type[Q]
    reply: type[R]
    server: str  # the service that answers it
    description: str
    # Replies the request may ask for instead of ``reply`` (e.g. a compact format).
    other_replies: tuple[type[c.Message], ...] = ()

    @property
    def pattern(self) -> str:
        return self.subject


# ------------------------------------------------------------------ events

CYCLE_STARTED = Event(
    "cycleStarted",
    "arena.cycle.started",
    c.CycleStarted,
    MARKET,
    "A trading cycle opens; agents have until decision_deadline.",
)
MARKET_SNAPSHOT = Event(
    "marketSnapshot",
    "arena.market.snapshot",
    c.MarketSnapshot,
    MARKET,
    "The market as every agent sees it for one cycle.",
)
MARKET_TICK = Event(
    "marketTick",
    "arena.market.tick",
    c.MarketTick,
    MARKET,
    "Prices between cycles, for stops, targets and liquidations.",
)
DECISION_PROPOSED = Event(
    "decisionProposed",
    "arena.decision.proposed.{agent_id}",
    c.Decision,
    AGENT_SERVICE,
    "One agent's decision for one cycle.",
)
DECISION_VERDICT = Event(
    "decisionVerdict",
    "arena.decision.verdict.{agent_id}",
    c.Verdict,
    RISK,
    "Risk's verdict: one result per action of a decision.",
)
LEDGER_POSITION = Event(
    "ledgerPosition",
    "arena.ledger.position.{agent_id}",
    c.PositionEvent,
    LEDGER,
    "A position opened or closed.",
)
LEDGER_ACCOUNT = Event(
    "ledgerAccount",
    "arena.ledger.account.{agent_id}",
    c.AccountEvent,
    LEDGER,
    "An account's balances changed.",
)
CYCLE_COMPLETED = Event(
    "cycleCompleted",
    "arena.cycle.completed",
    c.CycleCompleted,
    LEDGER,
    "Every verdict of a cycle applied, or its deadline passed.",
)
AGENT_HEARTBEAT = Event(
    "agentHeartbeat",
    "arena.agent.heartbeat.{agent_id}",
    c.Heartbeat,
    AGENT_SERVICE,
    "An agent is alive, or disabled and why.",
)
LLM_CALL = Event(
    "llmCall",
    "arena.llm.call.{agent_id}",
    c.LlmCall,
    AGENT_SERVICE,
    "One call to a model provider, with tokens and cost.",
)

# ------------------------------------------------------------------ requests

LEDGER_QUERY_PORTFOLIO = Request(
    "ledgerQueryPortfolio",
    "arena.ledger.query.portfolio",
    c.PortfolioQuery,
    c.Portfolio,
    LEDGER,
    "An agent's account and open positions.",
)
LEDGER_QUERY_PORTFOLIOS = Request(
    "ledgerQueryPortfolios",
    "arena.ledger.query.portfolios",
    c.PortfoliosQuery,
    c.Portfolios,
    LEDGER,
    "Several agents' accounts and open positions, in one question (an agent process asks "
    "for all the agents it hosts once a cycle).",
)
LEDGER_QUERY_ACCOUNTS = Request(
    "ledgerQueryAccounts",
    "arena.ledger.query.accounts",
    c.AccountsQuery,
    c.Accounts,
    LEDGER,
    "Every account.",
)
LEDGER_QUERY_LEADERBOARD = Request(
    "ledgerQueryLeaderboard",
    "arena.ledger.query.leaderboard",
    c.LeaderboardQuery,
    c.Leaderboard,
    LEDGER,
    "Agents ranked by equity.",
)
LEDGER_QUERY_POSITIONS = Request(
    "ledgerQueryPositions",
    "arena.ledger.query.positions",
    c.PositionsQuery,
    c.Positions,
    LEDGER,
    "Positions, open or closed, newest first.",
)
LEDGER_QUERY_TRADES = Request(
    "ledgerQueryTrades",
    "arena.ledger.query.trades",
    c.TradesQuery,
    c.Trades,
    LEDGER,
    "Executions, newest first.",
)
LEDGER_QUERY_DECISIONS = Request(
    "ledgerQueryDecisions",
    "arena.ledger.query.decisions",
    c.DecisionsQuery,
    c.Decisions,
    LEDGER,
    "Stored decisions with their verdicts, newest first.",
)
LEDGER_QUERY_EQUITY = Request(
    "ledgerQueryEquity",
    "arena.ledger.query.equity",
    c.EquityQuery,
    c.EquitySeries,
    LEDGER,
    "Equity time series per agent (format: points or columns; a reply over the "
    "server's max payload comes in chunks, header Arena-Chunk: i/n).",
    other_replies=(c.EquityColumns,),
)
LEDGER_QUERY_STATS = Request(
    "ledgerQueryStats",
    "arena.ledger.query.stats",
    c.StatsQuery,
    c.Stats,
    LEDGER,
    "Performance statistics per agent.",
)
LEDGER_QUERY_VERIFY = Request(
    "ledgerQueryVerify",
    "arena.ledger.query.verify",
    c.VerifyQuery,
    c.VerifyReport,
    LEDGER,
    "Recompute the books and check the audit chain.",
)
MARKET_QUERY_PRICES = Request(
    "marketQueryPrices",
    "arena.market.query.prices",
    c.PricesQuery,
    c.Prices,
    MARKET,
    "The latest price of every symbol.",
)
MARKET_QUERY_SYMBOL = Request(
    "marketQuerySymbol",
    "arena.market.query.symbol",
    c.SymbolQuery,
    c.SymbolReply,
    MARKET,
    "Ticker, funding, candles and indicators of one symbol.",
)
MARKET_QUERY_SNAPSHOT = Request(
    "marketQuerySnapshot",
    "arena.market.query.snapshot",
    c.SnapshotQuery,
    c.SnapshotReply,
    MARKET,
    "The latest market snapshot.",
)
SCHEDULER_STATUS = Request(
    "schedulerStatus",
    "arena.scheduler.status",
    c.SchedulerCommand,
    c.SchedulerStatus,
    MARKET,
    "The scheduler's state and statistics.",
)
SCHEDULER_TRIGGER = Request(
    "schedulerTrigger",
    "arena.scheduler.trigger",
    c.SchedulerCommand,
    c.SchedulerStatus,
    MARKET,
    "Start a cycle now (when none is running).",
)
SCHEDULER_PAUSE = Request(
    "schedulerPause",
    "arena.scheduler.pause",
    c.SchedulerCommand,
    c.SchedulerStatus,
    MARKET,
    "Stop starting new cycles.",
)
SCHEDULER_RESUME = Request(
    "schedulerResume",
    "arena.scheduler.resume",
    c.SchedulerCommand,
    c.SchedulerStatus,
    MARKET,
    "Start cycles again.",
)

# Every entry defined above, in the order defined: declaring a channel catalogues it.
EVENTS: tuple[Event[Any], ...] = tuple(v for v in dict(globals()).values() if isinstance(v, Event))
REQUESTS: tuple[Request[Any, Any], ...] = tuple(
    v for v in dict(globals()).values() if isinstance(v, Request)
)
Channel = Event[Any] | Request[Any, Any]
CATALOGUE: tuple[Channel, ...] = (*EVENTS, *REQUESTS)
