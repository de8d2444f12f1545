"""Stand-ins for the ledger and the market: real responders on the real NATS server.

They answer the gateway's queries with contract objects held in a mutable ``ArenaState``,
so the gateway is tested against the wire protocol without the services that own the
state, and a test can change what they answer (a new cycle, a new decision).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TypeVar

from prometheus_client import CollectorRegistry

from services.common import subjects
from services.common.bus import BadRequest, Bus, BusMetrics, NotFound
from services.common.contracts import (
    Accounts,
    AccountsQuery,
    AccountView,
    Action,
    ActionResult,
    AgentEquity,
    AgentStats,
    Candle,
    Decision,
    DecisionRecord,
    Decisions,
    DecisionsQuery,
    EquityColumns,
    EquityPoint,
    EquityQuery,
    EquitySeries,
    Indicators,
    Leaderboard,
    LeaderboardEntry,
    LeaderboardQuery,
    MarketSnapshot,
    Page,
    Portfolio,
    PortfolioQuery,
    Positions,
    PositionSide,
    PositionsQuery,
    PositionStatus,
    PositionView,
    Prices,
    PricesQuery,
    SchedulerCommand,
    SchedulerStatus,
    SnapshotQuery,
    SnapshotReply,
    Stats,
    StatsQuery,
    SymbolQuery,
    SymbolReply,
    SymbolSnapshot,
    TickPrice,
    TradeAction,
    Trades,
    TradesQuery,
    TradeView,
    VerifyQuery,
    VerifyReport,
)

T = TypeVar("T")

AGENTS = ("momentum", "mean-reversion", "random")
SYMBOLS = ("BTCUSDT", "ETHUSDT")
NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def account(agent_id: str, equity: Decimal = Decimal("100.20")) -> AccountView:
    return AccountView(
        agent_id=agent_id,
        display_name=agent_id.title(),
        provider="baseline",
        model_name=agent_id,
        balance=Decimal("90.25"),
        margin_used=Decimal(10),
        equity=equity,
        total_pnl=equity - Decimal(100),
        realized_pnl=Decimal(0),
        unrealized_pnl=Decimal("0.20"),
        total_fees=Decimal("0.05"),
        total_trades=1,
        winning_trades=0,
        losing_trades=0,
        open_positions=1,
        is_active=True,
    )


def leaderboard_entry(rank: int, agent_id: str, equity: Decimal) -> LeaderboardEntry:
    return LeaderboardEntry(
        rank=rank,
        agent_id=agent_id,
        display_name=agent_id.title(),
        equity=equity,
        return_pct=equity - Decimal(100),
        realized_pnl=Decimal(0),
        unrealized_pnl=Decimal("0.20"),
        total_fees=Decimal("0.05"),
        total_trades=1,
        win_rate=Decimal(0),
        open_positions=1,
        llm_cost_usd=Decimal("0.01"),
        net_return_pct=equity - Decimal("100.01"),
        parse_failures=1 if agent_id == "random" else 0,
        rejections=2 if agent_id == "random" else 0,
    )


def position(agent_id: str, symbol: str = "BTCUSDT") -> PositionView:
    return PositionView(
        position_id=f"p-{agent_id}",
        agent_id=agent_id,
        symbol=symbol,
        side=PositionSide.LONG,
        status=PositionStatus.OPEN,
        entry_price=Decimal("65000.5"),
        current_price=Decimal("65100"),
        quantity=Decimal("0.0015"),
        leverage=5,
        margin=Decimal(20),
        unrealized_pnl=Decimal("0.15"),
        liquidation_price=Decimal("52500"),
        stop_loss=Decimal("63000"),
        take_profit=Decimal("70000"),
        opened_at=NOW,
    )


def trade(agent_id: str, n: int) -> TradeView:
    return TradeView(
        trade_id=f"t-{agent_id}-{n}",
        agent_id=agent_id,
        position_id=f"p-{agent_id}-{n}",
        cycle_id=f"c-{n}",
        symbol="ETHUSDT",
        action="SELL",
        side=PositionSide.SHORT,
        entry_price=Decimal(3000),
        exit_price=Decimal(2950),
        quantity=Decimal("0.05"),
        realized_pnl=Decimal("2.5"),
        pnl_percentage=Decimal("12.5"),
        fees=Decimal("0.15"),
        exit_reason="take_profit",
        executed_at=NOW - timedelta(minutes=n),
        closed_at=NOW,
    )


def decision(agent_id: str, cycle_id: str, reasoning: str, at: datetime = NOW) -> Decision:
    return Decision(
        decision_id=Decision.make_id(cycle_id, agent_id),
        cycle_id=cycle_id,
        agent_id=agent_id,
        decided_at=at,
        decision_deadline=at + timedelta(seconds=4),
        actions=(
            Action(
                action=TradeAction.BUY,
                symbol="BTCUSDT",
                margin_usd=Decimal(20),
                leverage=5,
                confidence=0.7,
            ),
        ),
        reasoning=reasoning,
        model=agent_id,
    )


def decision_record(d: Decision) -> DecisionRecord:
    results = tuple(ActionResult(index=i, action=a, approved=True) for i, a in enumerate(d.actions))
    return DecisionRecord(decision=d, results=results, applied_at=d.decided_at)


def symbol_snapshot(symbol: str, price: Decimal) -> SymbolSnapshot:
    return SymbolSnapshot(
        symbol=symbol,
        last_price=price,
        mark_price=price,
        price_change_pct_24h=Decimal("1.5"),
        volume_24h=Decimal(12345),
        high_24h=price * Decimal("1.02"),
        low_24h=price * Decimal("0.98"),
        funding_rate=Decimal("0.0001"),
        next_funding_time=NOW + timedelta(hours=4),
        candles=(
            Candle(
                open_time=NOW,
                open=price,
                high=price,
                low=price,
                close=price,
                volume=Decimal(1),
            ),
        ),
        indicators=Indicators(rsi_14=55.5, ema_20=float(price)),
    )


def snapshot(cycle_id: str = "c-0") -> MarketSnapshot:
    return MarketSnapshot(
        cycle_id=cycle_id,
        taken_at=NOW,
        decision_deadline=NOW + timedelta(seconds=4),
        source="simulator",
        symbols=(
            symbol_snapshot("BTCUSDT", Decimal("65100")),
            symbol_snapshot("ETHUSDT", Decimal("3000.25")),
        ),
    )


def status(paused: bool = False) -> SchedulerStatus:
    return SchedulerStatus(
        running=True,
        paused=paused,
        source="simulator",
        cycle_seconds=2,
        current_cycle_id=None,
        next_run_at=NOW,
        cycles_started=4,
        cycles_completed=3,
        cycles_failed=0,
        cycles_skipped=0,
        last_duration_seconds=1.5,
        mean_duration_seconds=1.4,
    )


def _equities() -> dict[str, Decimal]:
    return {a: Decimal("100.20") for a in AGENTS}


@dataclass
class ArenaState:
    """What the stand-ins answer; tests change it to simulate the arena moving on."""

    equity: dict[str, Decimal] = field(default_factory=_equities)
    history: list[EquityPoint] = field(default_factory=list)
    decisions: list[Decision] = field(
        default_factory=lambda: [decision("momentum", "c-0", "EMA 20 crossed above EMA 50")]
    )
    paused: bool = False
    control_calls: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.history:
            self.record_equity(NOW - timedelta(minutes=5))
            self.record_equity(NOW)

    def record_equity(self, at: datetime) -> None:
        for agent_id, equity in self.equity.items():
            self.history.append(
                EquityPoint(
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

    def accounts(self) -> Accounts:
        return Accounts(accounts=tuple(account(a, e) for a, e in self.equity.items()))

    def leaderboard(self) -> Leaderboard:
        ranked = sorted(self.equity.items(), key=lambda item: item[1], reverse=True)
        return Leaderboard(
            entries=tuple(
                leaderboard_entry(rank, agent_id, equity)
                for rank, (agent_id, equity) in enumerate(ranked, start=1)
            )
        )


ACCOUNTS = ArenaState().accounts()
LEADERBOARD = ArenaState().leaderboard()
STATUS = status()


def _paged(rows: list[T], page: Page) -> tuple[T, ...]:
    return tuple(rows[page.offset : page.offset + page.limit])


async def connect(nats_url: str, name: str) -> Bus:
    return await Bus.connect(nats_url, name, BusMetrics(CollectorRegistry()))


async def ledger(nats_url: str, state: ArenaState | None = None) -> Bus:
    """Answers every ledger query as the ledger would."""
    arena = state or ArenaState()
    bus = await connect(nats_url, "ledger")

    def known(agent_id: str | None) -> None:
        if agent_id is not None and agent_id not in arena.equity:
            raise NotFound(f"no account for agent {agent_id!r}")

    async def accounts(_: AccountsQuery) -> Accounts:
        return arena.accounts()

    async def leaderboard(_: LeaderboardQuery) -> Leaderboard:
        return arena.leaderboard()

    async def portfolio(query: PortfolioQuery) -> Portfolio:
        known(query.agent_id)
        return Portfolio(
            account=account(query.agent_id, arena.equity[query.agent_id]),
            positions=(position(query.agent_id),),
        )

    async def positions(query: PositionsQuery) -> Positions:
        known(query.agent_id)
        rows = [position(a) for a in arena.equity if query.agent_id in (None, a)]
        if query.status == "closed":
            rows = []
        return Positions(positions=_paged(rows, query.page), total=len(rows))

    async def trades(query: TradesQuery) -> Trades:
        known(query.agent_id)
        rows = [trade(a, n) for n in range(1, 4) for a in arena.equity]
        rows = [t for t in rows if query.agent_id in (None, t.agent_id)]
        return Trades(trades=_paged(rows, query.page), total=len(rows))

    async def decisions(query: DecisionsQuery) -> Decisions:
        known(query.agent_id)
        rows = [
            decision_record(d)
            for d in reversed(arena.decisions)
            if query.agent_id in (None, d.agent_id)
        ]
        return Decisions(decisions=_paged(rows, query.page), total=len(rows))

    async def equity(query: EquityQuery) -> EquitySeries | EquityColumns:
        known(query.agent_id)
        rows = [
            p
            for p in arena.history
            if query.agent_id in (None, p.agent_id) and (query.since is None or p.at >= query.since)
        ][-query.limit :]
        if query.format == "points":
            return EquitySeries(points=tuple(rows))
        agents = sorted({p.agent_id for p in rows})
        return EquityColumns(
            agents=tuple(
                AgentEquity(
                    agent_id=a,
                    at=tuple(p.at for p in rows if p.agent_id == a),
                    equity=tuple(p.equity for p in rows if p.agent_id == a),
                )
                for a in agents
            )
        )

    async def stats(_: StatsQuery) -> Stats:
        return Stats(
            agents=tuple(
                AgentStats(
                    agent_id=a,
                    display_name=a.title(),
                    equity=e,
                    return_pct=e - Decimal(100),
                    realized_pnl=Decimal(0),
                    unrealized_pnl=Decimal("0.20"),
                    total_fees=Decimal("0.05"),
                    total_funding=Decimal(0),
                    llm_cost_usd=Decimal(0),
                    net_return_pct=e - Decimal(100),
                    total_trades=1,
                    winning_trades=0,
                    losing_trades=0,
                    win_rate=Decimal(0),
                    average_win=None,
                    average_loss=None,
                    max_drawdown_pct=Decimal(0),
                    sharpe_ratio=None,
                    parse_failures=0,
                    rejections_by_reason={},
                )
                for a, e in arena.equity.items()
            )
        )

    async def verify(_: VerifyQuery) -> VerifyReport:
        return VerifyReport(
            ok=True, checked_accounts=len(arena.equity), checked_decisions=1, problems=()
        )

    await bus.serve(subjects.LEDGER_QUERY_ACCOUNTS, AccountsQuery, accounts)
    await bus.serve(subjects.LEDGER_QUERY_LEADERBOARD, LeaderboardQuery, leaderboard)
    await bus.serve(subjects.LEDGER_QUERY_PORTFOLIO, PortfolioQuery, portfolio)
    await bus.serve(subjects.LEDGER_QUERY_POSITIONS, PositionsQuery, positions)
    await bus.serve(subjects.LEDGER_QUERY_TRADES, TradesQuery, trades)
    await bus.serve(subjects.LEDGER_QUERY_DECISIONS, DecisionsQuery, decisions)
    await bus.serve(subjects.LEDGER_QUERY_EQUITY, EquityQuery, equity)
    await bus.serve(subjects.LEDGER_QUERY_STATS, StatsQuery, stats)
    await bus.serve(subjects.LEDGER_QUERY_VERIFY, VerifyQuery, verify)
    return bus


async def market(nats_url: str, state: ArenaState | None = None) -> Bus:
    """Answers the market and scheduler queries as the market would."""
    arena = state or ArenaState()
    bus = await connect(nats_url, "market")
    latest = snapshot()

    async def scheduler_status(_: SchedulerCommand) -> SchedulerStatus:
        return status(arena.paused)

    async def trigger(command: SchedulerCommand) -> SchedulerStatus:
        arena.control_calls.append(f"trigger:{command.requested_by}")
        if arena.paused:
            raise BadRequest("the scheduler is paused; resume it first")
        return status(arena.paused)

    async def pause(command: SchedulerCommand) -> SchedulerStatus:
        arena.control_calls.append(f"pause:{command.requested_by}")
        arena.paused = True
        return status(arena.paused)

    async def resume(command: SchedulerCommand) -> SchedulerStatus:
        arena.control_calls.append(f"resume:{command.requested_by}")
        arena.paused = False
        return status(arena.paused)

    async def snapshot_query(_: SnapshotQuery) -> SnapshotReply:
        return SnapshotReply(snapshot=latest)

    async def prices(_: PricesQuery) -> Prices:
        return Prices(
            at=latest.taken_at,
            source=latest.source,
            prices=tuple(
                TickPrice(
                    symbol=s.symbol,
                    last_price=s.last_price,
                    mark_price=s.mark_price,
                    high=s.high_24h,
                    low=s.low_24h,
                )
                for s in latest.symbols
            ),
        )

    async def symbol(query: SymbolQuery) -> SymbolReply:
        found = latest.symbol(query.symbol)
        if found is None:
            raise NotFound(f"no data for {query.symbol}")
        return SymbolReply(cycle_id=latest.cycle_id, taken_at=latest.taken_at, symbol=found)

    await bus.serve(subjects.SCHEDULER_STATUS, SchedulerCommand, scheduler_status)
    await bus.serve(subjects.SCHEDULER_TRIGGER, SchedulerCommand, trigger)
    await bus.serve(subjects.SCHEDULER_PAUSE, SchedulerCommand, pause)
    await bus.serve(subjects.SCHEDULER_RESUME, SchedulerCommand, resume)
    await bus.serve(subjects.MARKET_QUERY_SNAPSHOT, SnapshotQuery, snapshot_query)
    await bus.serve(subjects.MARKET_QUERY_PRICES, PricesQuery, prices)
    await bus.serve(subjects.MARKET_QUERY_SYMBOL, SymbolQuery, symbol)
    return bus
