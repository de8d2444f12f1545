"""Stand-ins for the ledger and the market: real responders on the real NATS server.

They answer the gateway's queries with contract objects held in a mutable ``ArenaState``,
so the gateway is tested against the wire protocol without the services that own the
state, and a test can change what they answer (a new cycle, a new decision).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry

from services.common import channels
from services.common import contracts as c
from services.common.bus import BadRequest, Bus, BusMetrics, NotFound, TransientError
from services.market.prices import latest_prices
from tests import builders
from tests.builders import (
    NOW,
    decision_record,
    leaderboard_entry,
    trade,
)

T = TypeVar("T")

AGENTS = ("momentum", "mean-reversion", "random")
SYMBOLS = ("BTCUSDT", "ETHUSDT")


def account(agent_id: str, equity: Decimal = Decimal("100.20")) -> c.AccountView:
    """An agent's account as the stand-in ledger reports it: one open position."""
    return builders.account(
        agent_id,
        balance="90.25",
        margin_used=10,
        unrealized="0.20",
        equity=equity,
        fees="0.05",
        total_trades=1,
        open_positions=1,
        display_name=agent_id.title(),
        model_name=agent_id,
    )


def position(agent_id: str) -> c.PositionView:
    return builders.position(
        "BTCUSDT",
        agent_id=agent_id,
        position_id=f"p-{agent_id}",
        entry="65000.5",
        current="65100",
        quantity="0.0015",
        leverage=5,
        unrealized="0.15",
        liquidation="52500",
        stop_loss="63000",
        take_profit="70000",
    )


# What a browser gets of a decision (the llm_decision row of docs/api.md).
DECISION_SHOWN = frozenset(
    {
        "decision_id",
        "cycle_id",
        "agent_id",
        "decided_at",
        "model",
        "actions",
        "reasoning",
        "error",
        "usage",
    }
)


def decision(agent_id: str, cycle_id: str, reasoning: str, at: datetime = NOW) -> c.Decision:
    """A decision to go long BTCUSDT, as an agent of the stand-in arena publishes it."""
    return builders.decision(
        builders.buy("BTCUSDT", 20, 5, confidence=0.7),
        agent_id=agent_id,
        cycle_id=cycle_id,
        at=at,
        deadline=at + timedelta(seconds=4),
        reasoning=reasoning,
        model=agent_id,
    )


def _symbol(symbol: str, price: str) -> c.SymbolSnapshot:
    last = Decimal(price)
    return builders.symbol_snapshot(
        symbol,
        last,
        change_pct="1.5",
        volume=12345,
        high=last * Decimal("1.02"),
        low=last * Decimal("0.98"),
        candles=(
            c.Candle(open_time=NOW, open=last, high=last, low=last, close=last, volume=Decimal(1)),
        ),
        indicators=c.Indicators(rsi_14=55.5, ema_20=float(last)),
    )


def snapshot(cycle_id: str = "c-0") -> c.MarketSnapshot:
    """The stand-in market's latest snapshot: BTCUSDT and ETHUSDT."""
    return builders.snapshot(
        _symbol("BTCUSDT", "65100"),
        _symbol("ETHUSDT", "3000.25"),
        cycle_id=cycle_id,
        deadline=NOW + timedelta(seconds=4),
    )


def _equities() -> dict[str, Decimal]:
    return {a: Decimal("100.20") for a in AGENTS}


@dataclass
class ArenaState:
    """What the stand-ins answer; tests change it to simulate the arena moving on."""

    equity: dict[str, Decimal] = field(default_factory=_equities)
    history: list[c.EquityPoint] = field(default_factory=list)
    decisions: list[c.Decision] = field(
        default_factory=lambda: [decision("momentum", "c-0", "EMA 20 crossed above EMA 50")]
    )
    paused: bool = False
    control_calls: list[str] = field(default_factory=list)
    # The ledger's answers that fail as "unavailable" meanwhile (e.g. "leaderboard").
    failing: set[str] = field(default_factory=set)
    # Model usage per agent in /trading/stats (the others made no call).
    usage: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {
            "momentum": {
                "llm_calls": 12,
                "prompt_tokens": 24_500,
                "completion_tokens": 3_100,
                "latency_p50_ms": 850.0,
                "latency_p95_ms": 2_140.0,
            }
        }
    )

    # The return and alpha intervals per agent in /trading/stats (the others: none yet).
    evidence: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {
            "momentum": {
                "return_interval_pct": c.Interval(value=1.234, lower=-2.5, upper=5.75),
                "alpha_pct": c.Interval(value=-12.3, lower=-70.2, upper=-1.05),
                "beta": 0.42,
                "evidence_cycles": 288,
            }
        }
    )

    def __post_init__(self) -> None:
        if not self.history:
            self.record_equity(NOW - timedelta(minutes=5))
            self.record_equity(NOW)

    def record_equity(self, at: datetime) -> None:
        for agent_id, equity in self.equity.items():
            self.history.append(
                c.EquityPoint(
                    agent_id=agent_id,
                    at=at,
                    equity=equity,
                    balance=Decimal("90.25"),
                    margin_used=Decimal(10),
                    unrealized_pnl=Decimal("0.20"),
                    total_fees=Decimal("0.05"),
                    total_funding=Decimal(0),
                )
            )

    def accounts(self) -> c.Accounts:
        return c.Accounts(accounts=tuple(account(a, e) for a, e in self.equity.items()))

    def leaderboard(self) -> c.Leaderboard:
        ranked = sorted(self.equity.items(), key=lambda item: item[1], reverse=True)
        return c.Leaderboard(
            entries=tuple(
                leaderboard_entry(rank, agent_id, equity)
                for rank, (agent_id, equity) in enumerate(ranked, start=1)
            )
        )


ACCOUNTS = ArenaState().accounts()
LEADERBOARD = ArenaState().leaderboard()
STATUS = builders.scheduler_status()


def _paged(rows: list[T], page: c.Page) -> tuple[T, ...]:
    return tuple(rows[page.offset : page.offset + page.limit])


async def _answer_all(bus: Bus, server: str, *handlers: Callable[[Any], Awaitable[Any]]) -> None:
    """Answer every request of the catalogue that ``server`` answers, each by the handler
    named as the last word of its subject (a trailing ``_`` aside), so a stand-in answers
    no fewer requests than the service and serves each as the service does."""
    named = {h.__name__.rstrip("_"): h for h in handlers}
    for request in channels.REQUESTS:
        if request.server == server:
            await bus.serve_channel(request, named.pop(request.subject.rsplit(".", 1)[1]))
    assert not named, f"{server} answers no request for {sorted(named)}"


async def connect(nats_url: str, name: str) -> Bus:
    return await Bus.connect(nats_url, name, BusMetrics(CollectorRegistry()))


async def ledger(nats_url: str, state: ArenaState | None = None) -> Bus:
    """Answers every ledger query as the ledger would."""
    arena = state or ArenaState()
    bus = await connect(nats_url, "ledger")

    def known(agent_id: str | None) -> None:
        if agent_id is not None and agent_id not in arena.equity:
            raise NotFound(f"no account for agent {agent_id!r}")

    async def accounts(_: c.AccountsQuery) -> c.Accounts:
        return arena.accounts()

    async def leaderboard(_: c.LeaderboardQuery) -> c.Leaderboard:
        if "leaderboard" in arena.failing:
            raise TransientError("the leaderboard cannot be read just now")
        return arena.leaderboard()

    def held(agent_id: str) -> c.Portfolio:
        return c.Portfolio(
            account=account(agent_id, arena.equity[agent_id]), positions=(position(agent_id),)
        )

    async def portfolio(query: c.PortfolioQuery) -> c.Portfolio:
        known(query.agent_id)
        return held(query.agent_id)

    async def portfolios(query: c.PortfoliosQuery) -> c.Portfolios:
        return c.Portfolios(portfolios=tuple(held(a) for a in query.agent_ids if a in arena.equity))

    async def positions(query: c.PositionsQuery) -> c.Positions:
        known(query.agent_id)
        rows = [position(a) for a in arena.equity if query.agent_id in (None, a)]
        if query.status == "closed":
            rows = []
        return c.Positions(positions=_paged(rows, query.page), total=len(rows))

    async def trades(query: c.TradesQuery) -> c.Trades:
        known(query.agent_id)
        rows = [trade(a, n) for n in range(1, 4) for a in arena.equity]
        rows = [t for t in rows if query.agent_id in (None, t.agent_id)]
        return c.Trades(trades=_paged(rows, query.page), total=len(rows))

    async def decisions(query: c.DecisionsQuery) -> c.Decisions:
        known(query.agent_id)
        rows = [
            decision_record(d)
            for d in reversed(arena.decisions)
            if query.agent_id in (None, d.agent_id)
        ]
        return c.Decisions(decisions=_paged(rows, query.page), total=len(rows))

    async def equity(query: c.EquityQuery) -> c.EquitySeries | c.EquityColumns:
        known(query.agent_id)
        rows = [
            p
            for p in arena.history
            if query.agent_id in (None, p.agent_id) and (query.since is None or p.at >= query.since)
        ][-query.limit :]
        if query.format == "points":
            return c.EquitySeries(points=tuple(rows))
        agents = sorted({p.agent_id for p in rows})
        return c.EquityColumns(
            agents=tuple(
                c.AgentEquity(
                    agent_id=a,
                    at=tuple(p.at for p in rows if p.agent_id == a),
                    equity=tuple(p.equity for p in rows if p.agent_id == a),
                )
                for a in agents
            )
        )

    async def stats(_: c.StatsQuery) -> c.Stats:
        return c.Stats(
            agents=tuple(
                c.AgentStats(
                    **builders.agent_figures(a, e),
                    total_funding=Decimal(0),
                    llm_cost_usd=Decimal(0),
                    net_return_pct=e - Decimal(100),
                    winning_trades=0,
                    losing_trades=0,
                    average_win=None,
                    average_loss=None,
                    max_drawdown_pct=Decimal(0),
                    sharpe_ratio=None,
                    parse_failures=0,
                    rejections_by_reason={},
                    **arena.usage.get(a, {}),
                    **arena.evidence.get(a, {}),
                )
                for a, e in arena.equity.items()
            )
        )

    async def verify(_: c.VerifyQuery) -> c.VerifyReport:
        return c.VerifyReport(
            ok=True, checked_accounts=len(arena.equity), checked_decisions=1, problems=()
        )

    await _answer_all(
        bus,
        channels.LEDGER,
        accounts,
        leaderboard,
        portfolio,
        portfolios,
        positions,
        trades,
        decisions,
        equity,
        stats,
        verify,
    )
    return bus


async def market(nats_url: str, state: ArenaState | None = None) -> Bus:
    """Answers the market and scheduler queries as the market would."""
    arena = state or ArenaState()
    bus = await connect(nats_url, "market")
    latest = snapshot()

    async def status(_: c.SchedulerCommand) -> c.SchedulerStatus:
        return builders.scheduler_status(paused=arena.paused)

    async def trigger(command: c.SchedulerCommand) -> c.SchedulerStatus:
        arena.control_calls.append(f"trigger:{command.requested_by}")
        if arena.paused:
            raise BadRequest("the scheduler is paused; resume it first")
        return builders.scheduler_status(paused=arena.paused)

    async def pause(command: c.SchedulerCommand) -> c.SchedulerStatus:
        arena.control_calls.append(f"pause:{command.requested_by}")
        arena.paused = True
        return builders.scheduler_status(paused=arena.paused)

    async def resume(command: c.SchedulerCommand) -> c.SchedulerStatus:
        arena.control_calls.append(f"resume:{command.requested_by}")
        arena.paused = False
        return builders.scheduler_status(paused=arena.paused)

    async def snapshot_(_: c.SnapshotQuery) -> c.SnapshotReply:
        return c.SnapshotReply(snapshot=latest)

    async def prices(_: c.PricesQuery) -> c.Prices:
        return latest_prices(latest.source, latest, None)

    async def symbol(query: c.SymbolQuery) -> c.SymbolReply:
        found = latest.symbol(query.symbol)
        if found is None:
            raise NotFound(f"no data for {query.symbol}")
        return c.SymbolReply(cycle_id=latest.cycle_id, taken_at=latest.taken_at, symbol=found)

    await _answer_all(
        bus, channels.MARKET, status, trigger, pause, resume, snapshot_, prices, symbol
    )
    return bus
