"""Stand-ins for the ledger and the market: real responders on the real NATS server.

They answer the gateway's queries with fixed contract objects, so the gateway is tested
against the wire protocol without the services that own the state.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from prometheus_client import CollectorRegistry

from services.common import subjects
from services.common.bus import Bus, BusMetrics
from services.common.contracts import (
    Accounts,
    AccountsQuery,
    AccountView,
    Leaderboard,
    LeaderboardEntry,
    LeaderboardQuery,
    SchedulerCommand,
    SchedulerStatus,
)

AGENTS = ("momentum", "mean-reversion", "random")
NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def account(agent_id: str) -> AccountView:
    return AccountView(
        agent_id=agent_id,
        display_name=agent_id.title(),
        provider="baseline",
        model_name=agent_id,
        balance=Decimal("90.25"),
        margin_used=Decimal(10),
        equity=Decimal("100.20"),
        total_pnl=Decimal("0.20"),
        realized_pnl=Decimal(0),
        unrealized_pnl=Decimal("0.20"),
        total_fees=Decimal("0.05"),
        total_trades=1,
        winning_trades=0,
        losing_trades=0,
        open_positions=1,
        is_active=True,
    )


ACCOUNTS = Accounts(accounts=tuple(account(a) for a in AGENTS))
LEADERBOARD = Leaderboard(
    entries=tuple(
        LeaderboardEntry(
            rank=rank,
            agent_id=agent_id,
            display_name=agent_id.title(),
            equity=Decimal("100.20"),
            return_pct=Decimal("0.2"),
            realized_pnl=Decimal(0),
            unrealized_pnl=Decimal("0.20"),
            total_fees=Decimal("0.05"),
            total_trades=1,
            win_rate=Decimal(0),
            open_positions=1,
        )
        for rank, agent_id in enumerate(AGENTS, start=1)
    )
)
STATUS = SchedulerStatus(
    running=True,
    paused=False,
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


async def connect(nats_url: str, name: str) -> Bus:
    return await Bus.connect(nats_url, name, BusMetrics(CollectorRegistry()))


async def ledger(nats_url: str) -> Bus:
    """Answers the accounts and leaderboard queries as the ledger would."""
    bus = await connect(nats_url, "ledger")

    async def accounts(_: AccountsQuery) -> Accounts:
        return ACCOUNTS

    async def leaderboard(_: LeaderboardQuery) -> Leaderboard:
        return LEADERBOARD

    await bus.serve(subjects.LEDGER_QUERY_ACCOUNTS, AccountsQuery, accounts)
    await bus.serve(subjects.LEDGER_QUERY_LEADERBOARD, LeaderboardQuery, leaderboard)
    return bus


async def market(nats_url: str) -> Bus:
    """Answers the scheduler-status query as the market would."""
    bus = await connect(nats_url, "market")

    async def status(_: SchedulerCommand) -> SchedulerStatus:
        return STATUS

    await bus.serve(subjects.SCHEDULER_STATUS, SchedulerCommand, status)
    return bus
