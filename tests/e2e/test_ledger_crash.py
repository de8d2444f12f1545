"""SIGKILL the ledger during a burst of verdicts: nothing lost, nothing applied twice."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from services.common import subjects
from services.common.bus import Bus, BusMetrics
from services.common.contracts import (
    Action,
    ActionResult,
    CycleStarted,
    Decision,
    Indicators,
    MarketSnapshot,
    SymbolSnapshot,
    TradeAction,
    Verdict,
)
from services.common.settings import PROJECT_ROOT
from tests.e2e.processes import ServiceProcess
from tests.support import eventually

pytestmark = pytest.mark.e2e

AGENTS = ("momentum", "mean-reversion", "random")
CYCLES = 24
START = datetime.now(UTC).replace(microsecond=0)


def _price(n: int) -> Decimal:
    return Decimal(95000) + Decimal(n * 137 % 2000) - Decimal(1000)


def _cycle(n: int) -> tuple[CycleStarted, MarketSnapshot]:
    cycle_id = f"crash-{n:03d}"
    started = START + timedelta(seconds=n)
    deadline = started + timedelta(hours=1)
    price = _price(n)
    symbol = SymbolSnapshot(
        symbol="BTCUSDT",
        last_price=price,
        mark_price=price,
        price_change_pct_24h=Decimal(0),
        volume_24h=Decimal(1000),
        high_24h=price + 100,
        low_24h=price - 100,
        funding_rate=Decimal("0.0001"),
        next_funding_time=started + timedelta(hours=8),
        candles=(),
        indicators=Indicators(),
    )
    return (
        CycleStarted(
            cycle_id=cycle_id,
            sequence=n,
            started_at=started,
            decision_deadline=deadline,
            symbols=("BTCUSDT",),
            agents=AGENTS,
        ),
        MarketSnapshot(
            cycle_id=cycle_id,
            taken_at=started,
            decision_deadline=deadline,
            source="test",
            symbols=(symbol,),
        ),
    )


def _verdict(started: CycleStarted, agent: str, n: int) -> Verdict:
    action = (
        Action(action=TradeAction.BUY, symbol="BTCUSDT", margin_usd=Decimal(10), leverage=3)
        if n % 2 == 1
        else Action(action=TradeAction.CLOSE, symbol="BTCUSDT")
    )
    decision = Decision(
        decision_id=Decision.make_id(started.cycle_id, agent),
        cycle_id=started.cycle_id,
        agent_id=agent,
        decided_at=started.started_at,
        decision_deadline=started.decision_deadline,
        actions=(action,),
        reasoning=f"step {n}",
    )
    return Verdict(
        verdict_id=decision.decision_id,
        decided_at=started.started_at,
        decision=decision,
        results=(ActionResult(index=0, action=action, approved=True),),
    )


async def test_sigkill_during_a_burst_loses_nothing_and_applies_nothing_twice(
    nats_url: str, database_url: str, tmp_path: Path
) -> None:
    env = {"NATS_URL": nats_url, "DATABASE_URL": database_url, "METRICS_PORT": "0"}
    ledger = ServiceProcess("ledger", "ledger", env, tmp_path)
    ledger.start()
    await ledger.wait_started()

    bus = await Bus.connect(nats_url, "crash-test", BusMetrics(CollectorRegistry()))
    conn = await asyncpg.connect(database_url)
    try:
        for n in range(1, CYCLES + 1):
            started, snapshot = _cycle(n)
            await bus.publish(subjects.CYCLE_STARTED, started, started.cycle_id)
            await bus.publish(subjects.MARKET_SNAPSHOT, snapshot, snapshot.cycle_id)
            for agent in AGENTS:
                verdict = _verdict(started, agent, n)
                subject = subjects.decision_verdict(agent)
                await bus.publish(subject, verdict, verdict.verdict_id)
                # The same verdict again under another message id: JetStream keeps both.
                await bus.publish(subject, verdict, f"{verdict.verdict_id}:again")

        async def decisions() -> int:
            return int(await conn.fetchval("SELECT count(*) FROM decisions"))

        await eventually(lambda: _at_least(decisions, 5), what="some verdicts applied")
        ledger.kill()
        applied_before_crash = await decisions()
        assert applied_before_crash < CYCLES * len(AGENTS), "the burst ended before the kill"

        ledger.start()
        await ledger.wait_started()
        await eventually(
            lambda: _at_least(decisions, CYCLES * len(AGENTS)),
            timeout=60,
            what="every verdict applied after the restart",
        )
        await eventually(
            lambda: _outbox_drained(conn), timeout=30, what="every outbox event published"
        )

        per_agent = await conn.fetch(
            "SELECT llm_id, count(*) AS trades FROM trades GROUP BY llm_id ORDER BY llm_id"
        )
        assert {r["llm_id"]: r["trades"] for r in per_agent} == dict.fromkeys(AGENTS, CYCLES)
        completed = await conn.fetchval("SELECT count(*) FROM cycles WHERE status = 'completed'")
        assert completed == CYCLES
        open_positions = await conn.fetchval("SELECT count(*) FROM positions WHERE status = 'OPEN'")
        assert open_positions == 0
    finally:
        await conn.close()
        await bus.close()
        assert ledger.stop() == 0

    verify = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.ledger", "verify",
        cwd=PROJECT_ROOT,
        env=ledger.env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(verify.communicate(), timeout=60)
    assert verify.returncode == 0, output.decode()


async def _at_least(count: Callable[[], Awaitable[int]], minimum: int) -> bool:
    return await count() >= minimum


async def _outbox_drained(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0)
