"""Every statement the gateway's reads run, and the read of the live intervals after each
cycle, EXPLAINed on days of history: none reads a big table (equity snapshots, decisions,
proposals) from end to end."""

from __future__ import annotations

import json

import asyncpg
from asyncpg.connection import LoggedQuery

from bench.reads_history import build
from services.common.annual import cycles_per_year
from services.common.contracts import (
    AccountsQuery,
    DecisionsQuery,
    EquityQuery,
    LeaderboardQuery,
    Page,
    PortfolioQuery,
    PositionsQuery,
    StatsQuery,
    TradesQuery,
    VerifyQuery,
)
from services.ledger import sql
from services.ledger.curve_store import BUCKET
from services.ledger.live_evidence import LiveEvidence
from services.ledger.queries import LedgerQueries
from services.ledger.thinning import bucket_start

BIG = ("equity_snapshots", "decisions", "proposals")


async def test_no_read_scans_a_big_table(database_url: str) -> None:
    db = await asyncpg.connect(database_url)
    try:
        await build(db, days=2)
        logged: list[LoggedQuery] = []
        pool = await asyncpg.create_pool(
            database_url, min_size=1, max_size=1, init=lambda c: _log(c, logged)
        )
        try:
            q = LedgerQueries(pool)
            await q.verify(VerifyQuery(full=True))  # the checkpoint the next ones go on from
            logged.clear()
            await q.accounts(AccountsQuery())
            await q.portfolio(PortfolioQuery(agent_id="momentum"))
            await q.leaderboard(LeaderboardQuery())
            await q.positions(PositionsQuery(page=Page(limit=100)))
            await q.positions(PositionsQuery(agent_id="momentum", status="all"))
            await q.trades(TradesQuery(page=Page(limit=25)))
            await q.trades(TradesQuery(agent_id="momentum"))
            await q.decisions(DecisionsQuery(page=Page(limit=30)))
            await q.decisions(DecisionsQuery(agent_id="momentum"))
            await q.equity(EquityQuery(agent_id="momentum", points=1000, limit=20000))
            await q.stats(StatsQuery())
            await q.verify(VerifyQuery())
            evidence = LiveEvidence(pool, cycles_per_year(300), compute=lambda _: {})
            assert await evidence.refresh()
        finally:
            await pool.close()
        statements = {
            (q.query, repr(q.args)): q.args for q in logged if q.query.lstrip().startswith("SELECT")
        }
        assert len(statements) > 10
        scans = []
        for (sql, _), args in statements.items():
            try:
                plan = "\n".join(r[0] for r in await db.fetch(f"EXPLAIN {sql}", *args))
            except asyncpg.PostgresSyntaxError:  # several statements in one string: not a read
                continue
            scans += [(t, sql) for t in BIG if f"Seq Scan on {t}" in plan]
        assert scans == []
    finally:
        await db.close()


async def _log(conn: asyncpg.Connection, logged: list[LoggedQuery]) -> None:
    conn.add_query_logger(logged.append)


async def test_a_curve_bucket_reads_its_own_snapshots_only(database_url: str) -> None:
    """Summing an hour's bucket reads that hour's snapshots, however long the history: read
    as a join, every bucket went through all of the agent's snapshots (106 pages for two
    buckets after three days, 350 after ten; 45 ms a call after 12 days of replay)."""
    db = await asyncpg.connect(database_url)
    try:
        history = await build(db, days=3)
        agent = history.agents[0]
        end = await db.fetchval("SELECT max(at) FROM equity_snapshots")
        starts = [bucket_start(end, BUCKET) - BUCKET * h for h in (3, 2)]
        in_buckets = await db.fetchval(
            "SELECT count(*) FROM equity_snapshots WHERE llm_id = $1 AND at >= $2 AND at < $3",
            agent,
            starts[0],
            starts[1] + BUCKET,
        )
        assert in_buckets > 0
        for mode in ("auto", "force_generic_plan"):  # the plan of its first runs, and after
            await db.execute(f"SET plan_cache_mode = {mode}")
            plan = await db.fetchval(
                f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql.equity.BUCKET_ROWS}",
                agent,
                starts,
                BUCKET,
            )
            top = json.loads(plan)[0]["Plan"]
            assert top["Actual Rows"] == in_buckets
            assert int(top["Shared Hit Blocks"]) + int(top["Shared Read Blocks"]) < 30
    finally:
        await db.close()
