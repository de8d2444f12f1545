"""Ledger speed on a real Postgres: verdicts applied per second, and one tick (marking
to market) for 100 agents holding 3 positions each (target: p99 under 100 ms).

The reference, measured in the same run on the same connection, is a bare Postgres
commit (one row inserted in its own transaction): what any durable write costs.

Run: ``.venv/bin/python -m bench.ledger`` (an embedded Postgres in a temp directory),
or with ``DATABASE_URL`` pointing at an empty database.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg

from bench.measures import Better, Measure
from bench.sampling import percentile
from bench.table import print_measures
from devstack.postgres import EmbeddedPostgres
from services.common.contracts import (
    Action,
    ActionResult,
    CycleStarted,
    Decision,
    MarketTick,
    TickPrice,
    TradeAction,
    Verdict,
)
from services.common.instruments import InstrumentTable
from services.common.settings import TradingLimits
from services.ledger import sql
from services.ledger.marks import TickProcessor
from services.ledger.migrate import apply_migrations
from services.ledger.verdicts import VerdictApplier

AGENTS = 100
TICK_TARGET_MS = 100.0
SYMBOLS = {"BTCUSDT": Decimal(95000), "ETHUSDT": Decimal(3400), "SOLUSDT": Decimal(180)}
FEE = Decimal("0.0005")
START = datetime(2025, 1, 1, 1, tzinfo=UTC)  # away from a funding time


def _verdict(agent: str, cycle_id: str, actions: list[Action]) -> Verdict:
    decision = Decision(
        decision_id=Decision.make_id(cycle_id, agent), cycle_id=cycle_id, agent_id=agent,
        decided_at=START, decision_deadline=START + timedelta(minutes=4), actions=tuple(actions),
    )  # fmt: skip
    return Verdict(
        verdict_id=decision.decision_id,
        decided_at=START,
        decision=decision,
        results=tuple(
            ActionResult(index=i, action=a, approved=True) for i, a in enumerate(actions)
        ),
    )


async def _setup(conn: asyncpg.Connection, agents: int) -> None:
    await apply_migrations(conn)
    await conn.executemany(
        "INSERT INTO llm_accounts (llm_id, provider, model_name, display_name, balance, "
        "initial_balance) VALUES ($1::text, 'baseline', 'x', $1::text, 100, 100)",
        [(f"a{n:03d}",) for n in range(agents)],
    )
    started = CycleStarted(
        cycle_id="c1", sequence=1, started_at=START, decision_deadline=START + timedelta(hours=1),
        symbols=tuple(SYMBOLS), agents=tuple(f"a{n:03d}" for n in range(agents)),
    )  # fmt: skip
    await sql.cycles.insert_cycle(conn, sql.cycles.NewCycle(started, started.agents, START))
    await conn.executemany(
        "INSERT INTO market_data (symbol, price, mark_price, funding_rate, data_timestamp, "
        "cycle_id) VALUES ($1, $2, $2, 0.0001, $3, 'c1')",
        [(s, p, START) for s, p in SYMBOLS.items()],
    )


async def _verdicts(conn: asyncpg.Connection, agents: int) -> list[float]:
    applier = VerdictApplier(FEE, InstrumentTable(), TradingLimits(), frozenset(SYMBOLS))
    samples = []
    for n in range(agents):
        actions = [
            Action(action=TradeAction.BUY if i % 2 else TradeAction.SELL, symbol=s,
                   margin_usd=Decimal(20), leverage=5)
            for i, s in enumerate(SYMBOLS)
        ]  # fmt: skip
        t0 = time.perf_counter()
        async with conn.transaction():
            await sql.cycles.claim_message(conn, f"v{n}", "bench")
            await applier.apply(conn, [_verdict(f"a{n:03d}", "c1", actions)], START)
        samples.append((time.perf_counter() - t0) * 1000)
    return samples


async def _ticks(conn: asyncpg.Connection, count: int) -> list[float]:
    processor = TickProcessor(FEE)
    samples = []
    for n in range(count):
        wiggle = Decimal(1) + Decimal(n % 5 - 2) / 10000
        tick = MarketTick(
            tick_id=f"t{n}",
            at=START + timedelta(minutes=n),
            prices=tuple(
                TickPrice(symbol=s, last_price=p * wiggle, mark_price=p * wiggle,
                          high=p * wiggle, low=p * wiggle)
                for s, p in SYMBOLS.items()
            ),
        )  # fmt: skip
        t0 = time.perf_counter()
        async with conn.transaction():
            await sql.cycles.claim_message(conn, f"t{n}", "bench")
            await processor.apply(conn, [tick], START)
        samples.append((time.perf_counter() - t0) * 1000)
    return samples


async def _bare_commits(conn: asyncpg.Connection, count: int) -> list[float]:
    await conn.execute("CREATE TABLE IF NOT EXISTS bench_commit (n integer)")
    samples = []
    for n in range(count):
        t0 = time.perf_counter()
        async with conn.transaction():
            await conn.execute("INSERT INTO bench_commit VALUES ($1)", n)
        samples.append((time.perf_counter() - t0) * 1000)
    return samples


async def _run(url: str, quick: bool) -> list[Measure]:
    agents, tick_count = (20, 10) if quick else (AGENTS, 50)
    conn = await asyncpg.connect(url)
    try:
        await _setup(conn, agents)
        bare = await _bare_commits(conn, agents)
        verdicts = await _verdicts(conn, agents)
        ticks = await _ticks(conn, tick_count)
        positions = await conn.fetchval("SELECT count(*) FROM positions WHERE status='OPEN'")
    finally:
        await conn.close()
    commit = "bare Postgres commit"
    if positions != 3 * agents:
        raise RuntimeError(f"{positions} positions open, expected {3 * agents}")
    tick = f"tick, {agents} agents x 3 positions"
    return [
        Measure("ledger", "apply one verdict (3 opens) p50", percentile(verdicts, 50), "ms",
                reference=percentile(bare, 50), reference_name=commit),
        Measure("ledger", "apply one verdict (3 opens) p99", percentile(verdicts, 99), "ms",
                reference=percentile(bare, 99), reference_name=commit),
        Measure("ledger", "verdicts applied one at a time", 1000 * len(verdicts) / sum(verdicts),
                "/s", Better.HIGHER, reference=1000 * len(bare) / sum(bare),
                reference_name="bare commits"),
        Measure("ledger", f"{tick} p50", percentile(ticks, 50), "ms",
                reference=percentile(bare, 50), reference_name=commit),
        Measure("ledger", f"{tick} p99", percentile(ticks, 99), "ms", target=TICK_TARGET_MS,
                reference=percentile(bare, 99), reference_name=commit),
    ]  # fmt: skip


def measure(quick: bool = False) -> list[Measure]:
    url = os.environ.get("DATABASE_URL")
    if url:
        return asyncio.run(_run(url, quick))
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        server = EmbeddedPostgres(Path(tmp) / "data", keep=False)
        server.start()
        try:
            return asyncio.run(_run(server.ensure_database("bench"), quick))
        finally:
            server.stop()


def main() -> None:
    print_measures(measure())


if __name__ == "__main__":
    main()
