"""An in-process ledger on real NATS and Postgres, with the events it emits collected."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
from prometheus_client import CollectorRegistry

from services.common import subjects
from services.common.bus import Bus, BusMetrics
from services.common.clock import ManualClock
from services.common.contracts import (
    AccountEvent,
    Action,
    CycleCompleted,
    Message,
    PositionEvent,
    Verdict,
)
from services.common.runner import ServiceHost
from services.common.settings import Settings
from services.ledger.service import LedgerService, build
from tests.builders import approved, buy, cycle_started, snapshot, verdict
from tests.support import collect, eventually, running

LINEUP = Path(__file__).resolve().parent / "agents.toml"


@dataclass
class Ledger:
    host: ServiceHost
    bus: Bus
    db: asyncpg.Connection
    clock: ManualClock
    positions: list[PositionEvent] = field(default_factory=list)
    accounts: list[AccountEvent] = field(default_factory=list)
    completed: list[CycleCompleted] = field(default_factory=list)

    @property
    def service(self) -> LedgerService:
        assert isinstance(self.host.service, LedgerService)
        return self.host.service

    async def publish(self, subject: str, message: Message, natural_id: str) -> None:
        await self.bus.publish(subject, message, natural_id)

    async def start_cycle(
        self,
        cycle_id: str,
        sequence: int,
        prices: dict[str, Decimal],
        *agents: str,
        marks: dict[str, Decimal] | None = None,
    ) -> None:
        """Publish, at the clock's now, a cycle's start for ``agents`` and its snapshot."""
        now = self.clock.now()
        started = cycle_started(cycle_id, sequence, now, agents)
        await self.publish(subjects.CYCLE_STARTED, started, cycle_id)
        market = snapshot(cycle_id=cycle_id, at=now, prices=prices, marks=marks)
        await self.publish(subjects.MARKET_SNAPSHOT, market, cycle_id)

    async def send_verdict(self, v: Verdict) -> None:
        """Publish ``v`` on its agent's verdict subject, as the risk service does."""
        await self.publish(subjects.decision_verdict(v.decision.agent_id), v, v.verdict_id)

    async def apply(self, v: Verdict) -> None:
        """Publish ``v`` and wait until the ledger has decided it."""
        await self.send_verdict(v)
        await self.wait_decided(v.verdict_id)

    def metric(self, name: str, **labels: str) -> float:
        return self.host.registry.get_sample_value(name, labels) or 0.0

    def dead_lettered(self, consumer: str, reason: str) -> float:
        """How many messages ``consumer`` has dead-lettered for ``reason``."""
        labels = {"consumer": consumer, "reason": reason}
        return self.metric("arena_messages_dead_lettered_total", **labels)

    async def count(self, sql: str, *args: Any) -> int:
        return int(await self.db.fetchval(sql, *args))

    async def decided(self, decision_id: str) -> bool:
        return bool(
            await self.db.fetchval("SELECT 1 FROM decisions WHERE decision_id = $1", decision_id)
        )

    async def wait_decided(self, decision_id: str) -> None:
        await eventually(lambda: self.decided(decision_id), what=f"{decision_id} applied")

    async def account(self, agent: str) -> asyncpg.Record:
        return await self.db.fetchrow("SELECT * FROM llm_accounts WHERE llm_id = $1", agent)


@contextlib.asynccontextmanager
async def ledger(
    make_settings: Callable[..., Settings], database_url: str, **env: Any
) -> AsyncIterator[Ledger]:
    clock = ManualClock()
    env.setdefault("ARENA_AGENTS_FILE", str(LINEUP))
    settings = make_settings(DATABASE_URL=database_url, **env)
    bus = await Bus.connect(settings.nats_url, "ledger-test", BusMetrics(CollectorRegistry()))
    db = await asyncpg.connect(database_url)
    try:
        async with running("ledger", build, settings, clock) as host:
            yield Ledger(
                host,
                bus,
                db,
                clock,
                positions=await collect(bus, subjects.LEDGER_POSITION_ALL, PositionEvent),
                accounts=await collect(bus, subjects.LEDGER_ACCOUNT_ALL, AccountEvent),
                completed=await collect(bus, subjects.CYCLE_COMPLETED, CycleCompleted),
            )
    finally:
        await db.close()
        await bus.close()


LONG_BTC = buy("BTCUSDT", 10, 10, stop_loss=99000, take_profit=105000)


async def open_positions(lg: Ledger, *, momentum: list[Action], random: list[Action]) -> datetime:
    """A cycle at 01:00 in which momentum and random open ``momentum`` and ``random``; its
    time."""
    lg.clock.advance(3600)
    now = lg.clock.now()
    await lg.start_cycle(
        "c1", 1, {"BTCUSDT": Decimal(100000), "ETHUSDT": Decimal(3000)}, "momentum", "random"
    )
    await lg.apply(verdict("c1", "momentum", now, *(approved(a) for a in momentum)))
    await lg.apply(verdict("c1", "random", now, *(approved(a) for a in random)))
    return now
