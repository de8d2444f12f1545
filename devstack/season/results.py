"""A finished run's figures and rows, read from its database.

The figures are the ledger's own leaderboard (what the API and the dashboard show), so a
season's summary and the product cannot disagree; money stays a decimal string.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from services.common.contracts import LeaderboardEntry, LeaderboardQuery
from services.ledger import sql
from services.ledger.queries import LedgerQueries

# What a reader of a season needs to recompute its figures; bookkeeping tables stay out.
EXPORTED_TABLES = (
    "llm_accounts",
    "cycles",
    "decisions",
    "proposals",
    "rejected_decisions",
    "positions",
    "trades",
    "funding_payments",
    "equity_snapshots",
    "llm_api_calls",
)
# Each cycle's prices (BTC's is the report's benchmark), without the row ids and storage
# times that differ between two identical runs.
MARKET_DATA_QUERY = (
    "SELECT cycle_id, data_timestamp, symbol, price, mark_price, funding_rate "
    "FROM market_data WHERE cycle_id IS NOT NULL ORDER BY data_timestamp, symbol"
)


@dataclass(frozen=True)
class RunFigures:
    cycles: int
    chain_head: str
    chain_length: int
    agents: dict[str, dict[str, Any]]


def agent_figures(entry: LeaderboardEntry) -> dict[str, Any]:
    return {
        "final_equity": str(entry.equity),
        "return_pct": str(entry.return_pct),
        "net_return_pct": str(entry.net_return_pct),
        "fees": str(entry.total_fees),
        "funding": str(entry.total_funding),
        "llm_cost_usd": str(entry.llm_cost_usd),
        "trades": entry.total_trades,
        "parse_failures": entry.parse_failures,
        "rejections": entry.rejections,
    }


async def collect(database_url: str, export_to: Path) -> RunFigures:
    """The run's figures; its tables written to ``export_to/<table>.csv`` (a folder that
    exists) on the way."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        board = await LedgerQueries(pool).leaderboard(LeaderboardQuery())
        async with pool.acquire() as conn:
            length, head = await sql.decisions.chain_head(conn)
            cycles = await conn.fetchval("SELECT count(*) FROM cycles WHERE status = 'completed'")
            queries = {table: f"SELECT * FROM {table} ORDER BY 1" for table in EXPORTED_TABLES}
            queries["market_data"] = MARKET_DATA_QUERY
            for name, query in queries.items():
                # Ordered, so two identical runs export identical files.
                await conn.copy_from_query(
                    query, output=str(export_to / f"{name}.csv"), format="csv", header=True
                )
    finally:
        await pool.close()
    agents = {e.agent_id: agent_figures(e) for e in sorted(board.entries, key=lambda e: e.agent_id)}
    return RunFigures(int(cycles), head, length, agents)
