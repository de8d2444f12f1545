"""Request-reply answers: portfolio, accounts, leaderboard (read-only, no transaction)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from services.common.bus import NotFound
from services.common.contracts import (
    Accounts,
    AccountsQuery,
    Leaderboard,
    LeaderboardEntry,
    LeaderboardQuery,
    Portfolio,
    PortfolioQuery,
)
from services.ledger import accounting, store
from services.ledger.store import AccountRow
from services.ledger.views import account_view, position_view


def standings(rows: Sequence[AccountRow]) -> tuple[LeaderboardEntry, ...]:
    """Rank by equity, highest first; ties keep a stable order by agent id."""
    ranked = sorted(rows, key=lambda r: (-r.book.equity, r.llm_id))
    return tuple(
        LeaderboardEntry(
            rank=rank,
            agent_id=row.llm_id,
            display_name=row.display_name,
            equity=row.book.equity,
            return_pct=accounting.return_pct(row.book.equity, row.initial_balance),
            realized_pnl=row.realized_pnl,
            unrealized_pnl=row.unrealized_pnl,
            total_fees=row.total_fees,
            total_trades=row.total_trades,
            win_rate=accounting.win_rate(row.winning_trades, row.losing_trades),
            open_positions=row.open_positions,
        )
        for rank, row in enumerate(ranked, start=1)
    )


class LedgerQueries:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def portfolio(self, query: PortfolioQuery) -> Portfolio:
        async with (
            self._pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            # One snapshot of the account and its positions, so they agree with each other.
            row = await store.account(conn, query.agent_id)
            if row is None:
                raise NotFound(f"no account for agent {query.agent_id!r}")
            positions = await store.open_positions(conn, query.agent_id)
        return Portfolio(
            account=account_view(row), positions=tuple(position_view(p) for p in positions)
        )

    async def accounts(self, _: AccountsQuery) -> Accounts:
        async with self._pool.acquire() as conn:
            rows = await store.accounts(conn)
        return Accounts(accounts=tuple(account_view(r) for r in rows))

    async def leaderboard(self, _: LeaderboardQuery) -> Leaderboard:
        async with self._pool.acquire() as conn:
            rows = await store.accounts(conn)
        return Leaderboard(entries=standings(rows))
