"""Ledger speed on a real Postgres: verdicts applied per second, and one tick for
100 agents holding 3 positions each (target: under 100 ms).

Run: ``.venv/bin/python -m bench.ledger`` (an embedded Postgres in a temp directory),
or with ``DATABASE_URL`` pointing at an empty database.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg

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
from services.ledger import store
from services.ledger.marks import TickProcessor
from services.ledger.migrate import apply_migrations
from services.ledger.verdicts import VerdictApplier

AGENTS = 100
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


async def _setup(conn: asyncpg.Connection) -> None:
    await apply_migrations(conn)
    await conn.executemany(
        "INSERT INTO llm_accounts (llm_id, provider, model_name, display_name, balance, "
        "initial_balance) VALUES ($1::text, 'baseline', 'x', $1::text, 100, 100)",
        [(f"a{n:03d}",) for n in range(AGENTS)],
    )
    started = CycleStarted(
        cycle_id="c1", sequence=1, started_at=START, decision_deadline=START + timedelta(hours=1),
        symbols=tuple(SYMBOLS), agents=tuple(f"a{n:03d}" for n in range(AGENTS)),
    )  # fmt: skip
    await store.insert_cycle(conn, started, started.agents)
    await conn.executemany(
        "INSERT INTO market_data (symbol, price, mark_price, funding_rate, data_timestamp, "
        "cycle_id) VALUES ($1, $2, $2, 0.0001, $3, 'c1')",
        [(s, p, START) for s, p in SYMBOLS.items()],
    )


async def _verdicts(conn: asyncpg.Connection) -> list[float]:
    applier = VerdictApplier(FEE, InstrumentTable(), TradingLimits(), frozenset(SYMBOLS))
    samples = []
    for n in range(AGENTS):
        actions = [
            Action(action=TradeAction.BUY if i % 2 else TradeAction.SELL, symbol=s,
                   margin_usd=Decimal(20), leverage=5)
            for i, s in enumerate(SYMBOLS)
        ]  # fmt: skip
        t0 = time.perf_counter()
        async with conn.transaction():
            await store.claim_message(conn, f"v{n}", "bench")
            await applier.apply(conn, _verdict(f"a{n:03d}", "c1", actions), START)
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
            await store.claim_message(conn, f"t{n}", "bench")
            await processor.apply(conn, tick, START)
        samples.append((time.perf_counter() - t0) * 1000)
    return samples


def _row(name: str, samples: list[float], unit: str = "ms") -> str:
    q = statistics.quantiles(samples, n=100)
    return f"{name:<34}{len(samples):>6}{q[49]:>9.2f}{q[94]:>9.2f}{q[98]:>9.2f}  {unit}"


async def _run(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await _setup(conn)
        verdicts = await _verdicts(conn)
        ticks = await _ticks(conn, 50)
        open_positions = await conn.fetchval("SELECT count(*) FROM positions WHERE status='OPEN'")
    finally:
        await conn.close()
    print(f"ledger: {AGENTS} agents, {open_positions} open positions")
    print(f"{'measure':<34}{'n':>6}{'p50':>9}{'p95':>9}{'p99':>9}")
    print(_row("apply one verdict (3 opens)", verdicts))
    print(_row("apply one tick (all positions)", ticks))
    print(f"verdicts applied per second: {1000 / statistics.mean(verdicts):.0f}")
    p99 = statistics.quantiles(ticks, n=100)[98]
    print(f"tick target p99 < 100 ms: {'met' if p99 < 100 else 'NOT met'}")


def main() -> None:
    url = os.environ.get("DATABASE_URL")
    if url:
        asyncio.run(_run(url))
        return
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        server = EmbeddedPostgres(Path(tmp) / "data", keep=False)
        server.start()
        try:
            asyncio.run(_run(server.ensure_database("bench")))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
