"""The live return and alpha intervals: the report's statistics on the cycles so far,
computed after each completed cycle, never waited for by a stats request, and kept while
Postgres cannot be read; their worker process ends with the ledger, even a killed one."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import sys
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import numpy as np
import pytest

from services.common import channels, evidence
from services.common.annual import cycles_per_year
from services.common.contracts import Interval, Stats, StatsQuery
from services.common.settings import PROJECT_ROOT, Settings
from services.ledger.live_evidence import (
    RESAMPLES,
    SEED,
    AgentEvidence,
    CycleSeries,
    LiveEvidence,
    compute_all,
    timed,
)
from services.ledger.queries import LedgerQueries
from tests.builders import approved, hold, verdict
from tests.ledger.harness import Ledger, ledger
from tests.support import eventually

BTC = "BTCUSDT"
AGENTS = ("momentum", "mean-reversion", "random")
HISTORY = 20  # hand-made completed cycles h1..h20, before the real ones
CYCLE_SECONDS = 60


def _equity(agent: int, k: int) -> Decimal:
    """Agent ``agent``'s equity at cycle ``k``: a wave of its own around 100."""
    return Decimal(100 + 3 * math.sin(k / (2 + agent)) + 0.5 * k * (agent - 1)).quantize(
        Decimal("0.000001")
    )


def _mark(k: int) -> Decimal:
    return Decimal(95000 + 900 * math.cos(k / 3) + 40 * k).quantize(Decimal("0.1"))


async def _write_history(db: asyncpg.Connection, start: datetime) -> None:
    """Cycles h1..h20, completed, with BTC's mark and every agent's cycle snapshot."""
    for k in range(1, HISTORY + 1):
        cycle_id = f"h{k}"
        at = start - timedelta(minutes=HISTORY + 1 - k)
        await db.execute(
            "INSERT INTO cycles (cycle_id, sequence, started_at, decision_deadline, "
            "expected_agents, status, completed_at) "
            "VALUES ($1, $2, $3, $3, $4, 'completed', $3)",
            cycle_id,
            k,
            at,
            list(AGENTS),
        )
        await db.execute(
            "INSERT INTO market_data (symbol, price, mark_price, data_timestamp, cycle_id) "
            "VALUES ($1, $2, $3, $4, $5)",
            BTC,
            _mark(k) + 5,
            _mark(k),
            at,
            cycle_id,
        )
        for i, agent in enumerate(AGENTS):
            value = _equity(i, k)
            await db.execute(
                "INSERT INTO equity_snapshots (llm_id, at, source, equity, balance, "
                "margin_used, unrealized_pnl, total_fees, total_funding) "
                "VALUES ($1, $2, $3, $4, $4, 0, 0, 0, 0)",
                agent,
                at,
                f"cycle:{cycle_id}",
                value,
            )


async def _real_cycle(lg: Ledger, n: int) -> None:
    """Cycle ``c<n>`` (sequence n) at BTC mark ``_mark(n)``, every agent holding."""
    cycle_id = f"c{n}"
    now = lg.clock.now()
    before = len(lg.completed)
    price = {BTC: _mark(n) + 5}
    await lg.start_cycle(cycle_id, n, price, *AGENTS, marks={BTC: _mark(n)})
    for agent in AGENTS:
        await lg.send_verdict(verdict(cycle_id, agent, now, approved(hold())))
    await eventually(lambda: len(lg.completed) > before, what=f"{cycle_id} completed")
    lg.clock.advance(CYCLE_SECONDS)


def _expected(agent: int, cycles: int, balance: Decimal) -> AgentEvidence:
    """The report's figures on the hand-made history then ``cycles - HISTORY`` real cycles
    (the agent holding: its equity is its balance)."""
    ks = range(1, cycles + 1)
    equity = np.array([float(_equity(agent, k) if k <= HISTORY else balance) for k in ks])
    marks = np.array([float(_mark(k)) for k in ks])
    r, b = evidence.per_cycle_returns(equity), evidence.per_cycle_returns(marks)
    ppy = cycles_per_year(CYCLE_SECONDS)
    found = evidence.agent_intervals(r, b, ppy, np.random.default_rng(SEED), RESAMPLES)
    _, beta = evidence.alpha_beta(r, b, ppy)
    assert ppy == 525_600
    return AgentEvidence(
        return_pct=_percent(found.return_),
        alpha_pct=_percent(found.alpha),
        beta=beta,
        cycles=cycles,
    )


def _percent(interval: evidence.Interval) -> Interval:
    return Interval(
        value=interval.value * 100, lower=interval.lower * 100, upper=interval.upper * 100
    )


async def _stats(lg: Ledger) -> Stats:
    return await lg.bus.request(channels.LEDGER_QUERY_STATS.subject, StatsQuery(), Stats)


async def _cycles_shown(lg: Ledger, cycles: int) -> Stats:
    async def shown() -> Stats | None:
        stats = await _stats(lg)
        return stats if all(s.evidence_cycles == cycles for s in stats.agents) else None

    found: Stats = await eventually(shown, what=f"figures of {cycles} cycles")
    return found


async def test_the_figures_are_the_reports_and_follow_each_completed_cycle(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    async with ledger(make_settings, database_url, ARENA_CYCLE_SECONDS=CYCLE_SECONDS) as lg:
        before = await _stats(lg)
        assert all(s.return_interval_pct is None and s.alpha_pct is None for s in before.agents)
        assert all(s.beta is None and s.evidence_cycles == 0 for s in before.agents)
        await _write_history(lg.db, lg.clock.now())
        balance = (await lg.account("momentum"))["balance"]

        await _real_cycle(lg, HISTORY + 1)
        first = await _cycles_shown(lg, HISTORY + 1)
        await _real_cycle(lg, HISTORY + 2)
        second = await _cycles_shown(lg, HISTORY + 2)

        for stats, cycles in ((first, HISTORY + 1), (second, HISTORY + 2)):
            for i, agent in enumerate(AGENTS):
                shown = next(s for s in stats.agents if s.agent_id == agent)
                assert shown.equity == balance  # holding, every cycle
                expected = _expected(i, cycles, balance)
                assert shown.return_interval_pct == expected.return_pct
                assert shown.alpha_pct == expected.alpha_pct
                assert shown.beta == pytest.approx(expected.beta)
        # The last cycle moved every figure.
        assert first.agents[0].alpha_pct != second.agents[0].alpha_pct


async def test_a_stats_request_does_not_wait_for_the_computation(
    lg: Ledger, database_url: str
) -> None:
    await _write_history(lg.db, lg.clock.now())
    started, release = threading.Event(), threading.Event()

    def slow(series: Mapping[str, CycleSeries]) -> dict[str, AgentEvidence]:
        started.set()
        release.wait(timeout=20)
        return compute_all(series, cycles_per_year(CYCLE_SECONDS))

    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        keeper = LiveEvidence(pool, cycles_per_year(CYCLE_SECONDS), compute=slow)
        queries = LedgerQueries(pool, evidence=keeper)
        computing = asyncio.create_task(keeper.refresh())
        await eventually(started.is_set, what="the computation started")
        while_computing = await asyncio.wait_for(queries.stats(StatsQuery()), 5)
        assert all(s.evidence_cycles == 0 for s in while_computing.agents)
        assert all(s.return_interval_pct is None for s in while_computing.agents)
        assert not computing.done()
        release.set()
        assert await computing
        after = await queries.stats(StatsQuery())
        assert {s.evidence_cycles for s in after.agents} == {HISTORY}
        assert all(s.return_interval_pct is not None for s in after.agents)
    finally:
        release.set()
        await pool.close()


async def test_while_postgres_is_down_the_previous_figures_stay(
    lg: Ledger, database_url: str, postgres_admin_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    await _write_history(lg.db, lg.clock.now())
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    admin = await asyncpg.connect(postgres_admin_url)
    name = urlsplit(database_url).path.lstrip("/")
    keeper = LiveEvidence(pool, cycles_per_year(CYCLE_SECONDS))
    try:
        assert await keeper.refresh()
        previous = keeper.latest()
        assert {f.cycles for f in previous.values()} == {HISTORY}

        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        with caplog.at_level(logging.INFO, logger="services.ledger.live_evidence"):
            assert not await keeper.refresh()
            assert not await keeper.refresh()  # the next completed cycle, still down
            assert keeper.latest() == previous
            warned = [
                r
                for r in caplog.records
                if r.name == "services.ledger.live_evidence" and r.levelno == logging.WARNING
            ]
            assert len(warned) == 1

            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            assert await eventually(keeper.refresh, what="the cycles read again")
            assert keeper.latest() == previous  # the same history, the same figures
            assert any("read again" in r.getMessage() for r in caplog.records)
    finally:
        keeper.close()
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()
        await pool.close()


def test_figures_from_the_third_cycle_on_and_a_year_of_the_configured_cycles() -> None:
    assert cycles_per_year(300) == 105_120  # the report's five-minute year
    ppy = cycles_per_year(CYCLE_SECONDS)
    for cycles in range(1, 12):
        ks = range(1, cycles + 1)
        series = CycleSeries(
            np.array([float(_equity(0, k)) for k in ks]), np.array([float(_mark(k)) for k in ks])
        )
        found = compute_all({"momentum": series}, ppy, reps=50)
        if cycles < 3:
            assert found == {}
            continue
        figures = found["momentum"]
        assert figures.cycles == cycles
        assert figures.return_pct.lower <= figures.return_pct.upper
        assert math.isfinite(figures.beta)


WORKER_SCRIPT = """
import multiprocessing, os, sys, threading
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from services.ledger.live_evidence import worker_start

if __name__ == "__main__":
    spawn = multiprocessing.get_context("spawn")
    worker = ProcessPoolExecutor(
        1, mp_context=spawn, initializer=worker_start, initargs=(os.getpid(),)
    )
    Path(sys.argv[1]).write_text(str(worker.submit(os.getpid).result()))
    threading.Event().wait()
"""


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status


async def test_the_worker_process_ends_with_a_killed_ledger(tmp_path: Path) -> None:
    script, told = tmp_path / "ledger_like.py", tmp_path / "worker.pid"
    script.write_text(WORKER_SCRIPT)
    # No pipes: an orphaned worker holding one would keep the wait below waiting.
    ledger_like = await asyncio.create_subprocess_exec(
        sys.executable, str(script), str(told), cwd=PROJECT_ROOT
    )
    try:
        await eventually(lambda: told.exists() and told.read_text(), what="the worker's pid")
        worker = int(told.read_text())
        assert _running(worker)
        assert os.getpriority(os.PRIO_PROCESS, worker) >= 10  # below the services
    finally:
        ledger_like.kill()  # as an OOM kill or SIGKILL would: no stop() runs
        await ledger_like.wait()
    await eventually(lambda: not _running(worker), what="the orphaned worker to end")


async def test_a_worker_whose_ledger_died_before_it_started_ends_at_once() -> None:
    # The ledger it was started for (pid 0 stands for one gone) is not its parent now.
    orphan = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import time; from services.ledger.live_evidence import worker_start; "
        "worker_start(0); time.sleep(600)",
        cwd=PROJECT_ROOT,
    )
    try:
        assert await asyncio.wait_for(orphan.wait(), 30) == 0
    finally:
        if orphan.returncode is None:
            orphan.kill()
            await orphan.wait()


def test_the_pause_after_a_computation_counts_its_cpu_time_not_its_waits() -> None:
    """The rest after a computation is a multiple of the CPU it took: a computation kept
    waiting for a core (or, the first, for its worker to start) does not lengthen it."""
    waiting = threading.Event()

    def waits(series: Mapping[str, CycleSeries]) -> dict[str, AgentEvidence]:
        waiting.wait(timeout=0.3)
        return {}

    def works(series: Mapping[str, CycleSeries]) -> dict[str, AgentEvidence]:
        sum(i * i for i in range(2_000_000))
        return {}

    assert timed(waits, {})[1] < timed(works, {})[1]
    assert timed(waits, {})[1] < 0.1
