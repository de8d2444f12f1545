"""A whole arena as processes on its own NATS and Postgres, which faults can be dealt to.

The servers belong to the arena (not to the test session): NATS is killed and started
again on the same port and store, Postgres shut down and started again on the same data,
and every service can be SIGKILLed and started again, as an operator's machine would see it.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import asyncpg
import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy

from devstack.nats_server import EmbeddedNats
from devstack.postgres import EmbeddedPostgres
from services.common import channels, subjects
from services.common.contracts import CycleCompleted, Decision, SchedulerCommand
from services.common.lineup import load_lineup
from services.ledger.verify import verify
from tests.e2e.processes import ServiceProcess
from tests.support import eventually

LINEUP = Path(__file__).resolve().parents[1] / "e2e" / "lineup.toml"
AGENTS = tuple(a.id for a in load_lineup(LINEUP).active)
LEDGER_DURABLES = ("ledger-books", "ledger-llm-calls", "ledger-proposals")


@dataclass(frozen=True)
class Books:
    """What the books held when a fault run was checked."""

    decisions: int
    late: int
    trades: int


@dataclass
class Completion:
    cycle_id: str
    timed_out: bool
    seen_at: float  # monotonic


@dataclass
class FaultArena:
    nats_server: EmbeddedNats
    postgres: EmbeddedPostgres
    database_url: str
    procs: dict[str, ServiceProcess]
    observer: NatsClient | None = None
    completions: list[Completion] = field(default_factory=list)
    started_at: list[float] = field(default_factory=list)

    # ------------------------------------------------------------ observing

    async def observe(self) -> None:
        async def quiet(_: Exception) -> None:
            pass  # NATS going away is the point here, not news

        self.observer = await nats.connect(
            self.nats_server.url,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.2,
            error_cb=quiet,
        )

        async def on_completed(msg: Msg) -> None:
            event = CycleCompleted.model_validate_json(msg.data)
            self.completions.append(Completion(event.cycle_id, event.timed_out, time.monotonic()))

        async def on_started(_: Msg) -> None:
            self.started_at.append(time.monotonic())

        await self.observer.subscribe(subjects.CYCLE_COMPLETED, cb=on_completed)
        await self.observer.subscribe(subjects.CYCLE_STARTED, cb=on_started)

    async def completed_cycles(self, count: int, *, after: float, timeout: float = 90) -> float:
        """Wait for ``count`` cycles completed in time after ``after``; the first one's time."""

        def done() -> float | None:
            fresh = [c for c in self.completions if c.seen_at > after and not c.timed_out]
            return fresh[0].seen_at if len(fresh) >= count else None

        first: float = await eventually(
            done, timeout=timeout, interval=0.1, what=f"{count} completed cycles"
        )
        return first

    async def next_cycle_start(self, timeout: float = 30) -> None:
        """Wait until a cycle has just started: faults land in the middle of one."""
        seen = len(self.started_at)
        await eventually(lambda: len(self.started_at) > seen, timeout=timeout, interval=0.02)

    # ------------------------------------------------------------ faults

    async def kill_and_restart(self, name: str, down_seconds: float = 1.0) -> None:
        proc = self.procs[name]
        proc.kill()
        await asyncio.sleep(down_seconds)  # the outage being simulated, not synchronisation
        proc.start()
        await proc.wait_started(timeout=60)

    async def nats_outage(self, seconds: float) -> None:
        self.nats_server.kill()
        await asyncio.sleep(seconds)  # the outage being simulated
        self.nats_server.start()

    async def postgres_outage(self, seconds: float) -> None:
        await asyncio.to_thread(self.postgres.pause)
        await asyncio.sleep(seconds)  # the outage being simulated
        await asyncio.to_thread(self.postgres.resume)

    # ------------------------------------------------------------ settling and reading

    async def pause_market(self) -> None:
        assert self.observer is not None
        await self.observer.request(
            channels.SCHEDULER_PAUSE.subject, SchedulerCommand().to_bytes(), timeout=10
        )

    async def consumers_idle(self) -> bool:
        assert self.observer is not None
        js = self.observer.jetstream()
        durables = (*LEDGER_DURABLES, "risk", *(f"agent-{a}" for a in AGENTS))
        for durable in durables:
            info = await js.consumer_info(subjects.STREAM, durable)
            if info.num_pending or info.num_ack_pending:
                return False
        return True

    async def proposals(self) -> list[Decision]:
        """Every decision the agents published, read back from the stream."""
        assert self.observer is not None
        js = self.observer.jetstream()
        sub = await js.pull_subscribe(
            subjects.DECISION_PROPOSED_ALL,
            stream=subjects.STREAM,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
        )
        found: list[Decision] = []
        try:
            while True:
                try:
                    batch = await sub.fetch(256, timeout=2)
                except TimeoutError:
                    return found
                for msg in batch:
                    found.append(Decision.model_validate_json(msg.data))
                    await msg.ack()
        finally:
            await sub.unsubscribe()

    async def dead_letters(self) -> int:
        assert self.observer is not None
        info = await self.observer.jetstream().stream_info(subjects.DLQ_STREAM)
        return int(info.state.messages)

    async def db(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.database_url)

    async def settle_and_check(self) -> Books:
        """Stop new cycles, wait for every proposal to be booked, then check the books.

        Every decision an agent published is in the books (applied, rejected, or late
        with its reason), nothing is dead-lettered, ``verify`` finds nothing, and no
        effect was applied twice: one opening trade per position, at most one closing
        trade, one position per "opened" result. Raises AssertionError otherwise.
        """
        await self.pause_market()
        # A cycle under way when the market paused is still being decided (a replay's
        # always is): its decisions count once every consumer has settled what it holds.
        await eventually(self.consumers_idle, timeout=120, what="every consumer idle")
        ids = {d.decision_id for d in await self.proposals()}
        conn = await self.db()
        try:

            async def all_booked() -> bool:
                booked = await conn.fetchval(
                    "SELECT count(*) FROM decisions WHERE decision_id = ANY($1::text[])",
                    list(ids),
                )
                return booked == len(ids) and await self.consumers_idle()

            await eventually(all_booked, timeout=120, what="every proposed decision booked")
            assert await self.dead_letters() == 0, "dead letters"
            assert await conn.fetchval("SELECT count(*) FROM decisions") == len(ids)
            opened = await conn.fetchval(
                "SELECT count(*) FROM decisions, jsonb_array_elements(results) r "
                "WHERE r->>'outcome' = 'opened'"
            )
            assert await conn.fetchval("SELECT count(*) FROM positions") == opened
            doubled = await conn.fetch(
                "SELECT position_id FROM trades GROUP BY position_id HAVING "
                "count(*) FILTER (WHERE exit_price IS NULL) <> 1 "
                "OR count(*) FILTER (WHERE exit_price IS NOT NULL) > 1"
            )
            assert doubled == [], doubled
            unclosed = await conn.fetchval(
                "SELECT count(*) FROM positions p WHERE status <> 'OPEN' AND NOT EXISTS "
                "(SELECT 1 FROM trades t WHERE t.position_id = p.id AND t.exit_price IS NOT NULL)"
            )
            assert unclosed == 0
            problems = await verify(conn, unbooked_grace=timedelta(0))
            assert problems == [], problems
            late = await conn.fetchval(
                "SELECT count(*) FROM rejected_decisions WHERE reason_codes && "
                "ARRAY['late', 'past_deadline', 'ledger_cycle_closed']"
            )
            trades = await conn.fetchval("SELECT count(*) FROM trades")
            return Books(decisions=len(ids), late=int(late), trades=int(trades))
        finally:
            await conn.close()


@contextlib.asynccontextmanager
async def fault_arena(log_dir: Path, **settings: str) -> AsyncIterator[FaultArena]:
    root = Path(tempfile.mkdtemp(prefix="arena-faults-"))
    nats_server = EmbeddedNats(root / "nats")
    postgres = EmbeddedPostgres(root / "postgres", keep=False)
    nats_server.start()
    procs: dict[str, ServiceProcess] = {}
    try:
        await asyncio.to_thread(postgres.start)
        database_url = await asyncio.to_thread(postgres.ensure_database, "arena")
        env = {
            "NATS_URL": nats_server.url,
            "DATABASE_URL": database_url,
            "MARKET_SOURCE": "simulator",
            "ARENA_AGENTS_FILE": str(LINEUP),
            "METRICS_PORT": "0",
            **settings,
        }
        procs["ledger"] = ServiceProcess("ledger", "ledger", env, log_dir)
        procs["risk"] = ServiceProcess("risk", "risk", env, log_dir)
        for agent in AGENTS:
            procs[f"agent-{agent}"] = ServiceProcess(
                f"agent-{agent}", "agent", {**env, "AGENT_ID": agent}, log_dir
            )
        procs["market"] = ServiceProcess("market", "market", env, log_dir)
        for proc in procs.values():
            proc.start()
        await asyncio.gather(*(p.wait_started(timeout=90) for p in procs.values()))
        arena = FaultArena(nats_server, postgres, database_url, procs)
        await arena.observe()
        yield arena
        if arena.observer is not None:
            await arena.observer.close()
    finally:
        for proc in procs.values():
            with contextlib.suppress(Exception):
                proc.stop()
        nats_server.stop()
        await asyncio.to_thread(postgres.stop)
        shutil.rmtree(root, ignore_errors=True)
