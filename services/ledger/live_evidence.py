"""Each agent's return and alpha against holding BTC so far, with 95 % intervals.

The figures are the season report's (:mod:`services.common.evidence`) on the cycles
completed so far: an agent's equity at a cycle is its ``cycle:<id>`` snapshot, BTC's price
its mark in that cycle's ``market_data`` row; an agent's series keeps the completed cycles
where both have a figure, in cycle order (a timed-out cycle is left out, as in the report).
The bootstraps take about two seconds of CPU with a month of cycles and seven agents
(half a minute with a hundred), too long for a request and too much CPU to share the
ledger's process: :class:`LiveEvidence` computes the figures after completed cycles in a
worker process of its own, at a low scheduling priority (the services' work comes first
on a busy machine), with a fixed seed (the same history gives the same figures), and
``/trading/stats`` answers with the latest ones. Between two computations it rests
:data:`PAUSE_FACTOR` times the CPU time the last one took, five seconds at least: a
twentieth of a core at most during a replay; a live cycle of minutes is computed after
each (up to a month of a hundred agents, whose figures then lag a cycle or two). While
Postgres cannot be read the previous figures stay; the next completed cycle tries again.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import multiprocessing
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg
import numpy as np
import numpy.typing as npt

from services.common.contracts import Interval
from services.ledger import sql
from services.ledger.database import acquire

if TYPE_CHECKING:
    from services.common import evidence

log = logging.getLogger(__name__)

BENCHMARK = "BTCUSDT"
RESAMPLES = 500
SEED = 0
BACKGROUND_NICENESS = 10  # the worker process's, above the services' 0
ORPHAN_CHECK_SECONDS = 1.0
PAUSE_FACTOR = 19  # computing takes at most a twentieth of a core
MIN_PAUSE_SECONDS = 5.0  # and a replay's figures are at most this much behind
MIN_CYCLES = 3  # two returns: a deviation, a regression (as the report)

Series = npt.NDArray[np.float64]


@dataclass(frozen=True)
class CycleSeries:
    """One agent's equity and the benchmark's price at the same cycles, oldest first."""

    equity: Series
    benchmark: Series


@dataclass(frozen=True)
class AgentEvidence:
    """Return (percent) and annualised alpha (percent a year) with their intervals, beta,
    and the number of cycles they come from."""

    return_pct: Interval
    alpha_pct: Interval
    beta: float
    cycles: int


Compute = Callable[[Mapping[str, CycleSeries]], dict[str, AgentEvidence]]


def series_of(records: Iterable[asyncpg.Record]) -> dict[str, CycleSeries]:
    """Per agent, the rows of :func:`sql.equity.cycle_equity` (already in cycle order)."""
    equity: dict[str, list[float]] = defaultdict(list)
    prices: dict[str, list[float]] = defaultdict(list)
    for record in records:
        agent: str = record["llm_id"]
        equity[agent].append(float(record["equity"]))
        prices[agent].append(float(record["benchmark"]))
    return {
        agent: CycleSeries(np.array(values), np.array(prices[agent]))
        for agent, values in equity.items()
    }


def _percent(interval: evidence.Interval) -> Interval:
    return Interval(
        value=interval.value * 100.0, lower=interval.lower * 100.0, upper=interval.upper * 100.0
    )


def agent_evidence(
    series: CycleSeries, periods_per_year: int, reps: int = RESAMPLES, seed: int = SEED
) -> AgentEvidence | None:
    """The figures of one agent's series (None with fewer than :data:`MIN_CYCLES`); each
    agent's resamples draw from a generator of its own, seeded with ``seed``."""
    if len(series.equity) < MIN_CYCLES:
        return None
    # Here, in the worker thread: scipy, arch and statsmodels take seconds to import.
    from services.common import evidence

    r = evidence.per_cycle_returns(series.equity)
    benchmark = evidence.per_cycle_returns(series.benchmark)
    rng = np.random.default_rng(seed)
    intervals = evidence.agent_intervals(r, benchmark, periods_per_year, rng, reps)
    return AgentEvidence(
        return_pct=_percent(intervals.return_),
        alpha_pct=_percent(intervals.alpha),
        beta=evidence.alpha_beta(r, benchmark, periods_per_year)[1],
        cycles=len(series.equity),
    )


def compute_all(
    series: Mapping[str, CycleSeries],
    periods_per_year: int,
    reps: int = RESAMPLES,
    seed: int = SEED,
) -> dict[str, AgentEvidence]:
    """Every agent's figures; an agent with too few cycles has none."""
    found = {a: agent_evidence(s, periods_per_year, reps, seed) for a, s in series.items()}
    return {agent: figures for agent, figures in found.items() if figures is not None}


def worker_start(parent: int) -> None:
    """The worker process's start: it yields the CPU to the services, and ends with the
    ledger ``parent`` (killed, the ledger cannot stop it: the worker sees itself orphaned,
    even when the ledger died while the worker was still starting)."""
    os.nice(BACKGROUND_NICENESS)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(ORPHAN_CHECK_SECONDS)
        os._exit(0)

    threading.Thread(target=watch, name="orphan-watch", daemon=True).start()
    # Imported now, not in the first computation: its CPU time is the computing's alone.
    from services.common import evidence  # noqa: F401


def timed(
    compute: Compute, series: Mapping[str, CycleSeries]
) -> tuple[dict[str, AgentEvidence], float]:
    """``compute(series)`` with the CPU time it took its thread."""
    began = time.thread_time()
    figures = compute(series)
    return figures, time.thread_time() - began


class LiveEvidence:
    """The latest figures of every agent, computed again after each completed cycle.

    ``compute`` turns the series into figures (default: :func:`compute_all` with
    ``periods_per_year``, :data:`RESAMPLES` resamples and seed :data:`SEED`, in a worker
    process started at the first computation; one given runs in a thread). Only agents
    with :data:`MIN_CYCLES` cycles are computed: before that no process is started.
    Between two computations at least ``min_pause_seconds`` pass.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        periods_per_year: int,
        *,
        benchmark: str = BENCHMARK,
        compute: Compute | None = None,
        min_pause_seconds: float = MIN_PAUSE_SECONDS,
    ) -> None:
        self._pool = pool
        self._min_pause = min_pause_seconds
        self._benchmark = benchmark
        self._compute = compute or functools.partial(compute_all, periods_per_year=periods_per_year)
        self._in_worker = compute is None
        self._worker: ProcessPoolExecutor | None = None
        self._latest: dict[str, AgentEvidence] = {}
        self._due = asyncio.Event()
        self._due.set()  # the history from before a restart
        self._unreadable = False
        self._spent = 0.0  # the CPU time of the last computation

    def latest(self) -> Mapping[str, AgentEvidence]:
        """The figures of the last computation (none before the first one ends)."""
        return self._latest

    def cycle_completed(self) -> None:
        """Compute again (once, however many cycles complete meanwhile)."""
        self._due.set()

    async def run(self) -> None:
        while True:
            await self._due.wait()
            self._due.clear()
            self._spent = 0.0
            try:
                await self.refresh()
            except Exception:
                log.exception("computing the live return and alpha intervals failed")
            # A replay completes dozens of cycles a second: computing after each would keep
            # a core busy. Resting PAUSE_FACTOR times the CPU time the computation took (the
            # worker's start left out), and at least min_pause_seconds, keeps it to a small
            # fraction of one (a live cycle of minutes is computed after each).
            await asyncio.sleep(max(PAUSE_FACTOR * self._spent, self._min_pause))

    async def refresh(self) -> bool:
        """Read the series and compute; False (the previous figures kept) when the read
        fails, logged once until a read succeeds again."""
        try:
            async with acquire(self._pool) as conn:
                records = await sql.equity.cycle_equity(conn, self._benchmark)
        except Exception as exc:  # down, restarting, cutting connections, or refusing
            if not self._unreadable:
                log.warning(
                    "cannot read the cycles for the live intervals, keeping the previous "
                    "figures until a cycle completes with Postgres back: %r",
                    exc,
                )
            self._unreadable = True
            return False
        if self._unreadable:
            log.info("the cycles for the live intervals can be read again")
            self._unreadable = False
        series = {a: s for a, s in series_of(records).items() if len(s.equity) >= MIN_CYCLES}
        self._latest = await self._figures(series) if series else {}
        return True

    async def _figures(self, series: Mapping[str, CycleSeries]) -> dict[str, AgentEvidence]:
        if not self._in_worker:
            figures, self._spent = await asyncio.to_thread(timed, self._compute, series)
            return figures
        if self._worker is None:
            # Spawned, not forked: a fork would copy the event loop's threads and sockets.
            spawn = multiprocessing.get_context("spawn")
            self._worker = ProcessPoolExecutor(
                1, mp_context=spawn, initializer=worker_start, initargs=(os.getpid(),)
            )
        loop = asyncio.get_running_loop()
        try:
            figures, self._spent = await loop.run_in_executor(
                self._worker, timed, self._compute, series
            )
            return figures
        except BrokenProcessPool:
            self._worker = None  # killed (out of memory?): a new one at the next cycle
            raise

    def close(self) -> None:
        """Stop the worker process (a computation under way is abandoned)."""
        if self._worker is not None:
            self._worker.shutdown(wait=False, cancel_futures=True)
            self._worker = None
