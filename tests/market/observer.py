"""What the market tests share: an observer of what it publishes, the market on a manual clock."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import nats
from nats.aio.msg import Msg
from prometheus_client import CollectorRegistry

from services.common import channels, subjects
from services.common.bus import Bus, BusMetrics
from services.common.clock import ManualClock
from services.common.contracts import (
    CycleCompleted,
    CycleStarted,
    MarketSnapshot,
    MarketTick,
    SchedulerCommand,
    SchedulerStatus,
)
from services.common.runner import ServiceHost
from services.common.settings import Settings
from services.market.service import build
from services.market.state import MarketState
from services.market.state_store import STATE_KEY
from tests.support import eventually, running

T0 = datetime(2025, 1, 1, tzinfo=UTC)
# Cycles of a minute, half of it to decide, a tick every 10 s: the completion grace is
# 15 s, so a cycle without completion fails at T0 + 45 s, before the next slot at 60 s.
MANUAL = {
    "ARENA_CYCLE_SECONDS": 60,
    "ARENA_DECISION_SECONDS": 30,
    "ARENA_TICK_SECONDS": 10,
    "MARKET_SOURCE": "simulator",
}
# The market with waits short enough to notice a manual clock's advance at once.
MARKET = functools.partial(build, max_wait_seconds=0.01)


def at(seconds: float) -> datetime:
    """The instant ``seconds`` after T0."""
    return T0 + timedelta(seconds=seconds)


@dataclass
class Observer:
    """Everything the market publishes, with stream sequences; optionally completes cycles."""

    bus: Bus
    auto_complete: bool = False
    started: list[tuple[int, CycleStarted]] = field(default_factory=list)
    snapshots: list[tuple[int, MarketSnapshot]] = field(default_factory=list)
    ticks: list[MarketTick] = field(default_factory=list)
    tick_sequences: list[int] = field(default_factory=list)

    async def on_started(self, msg: Msg) -> None:
        message = CycleStarted.model_validate_json(msg.data)
        self.started.append((msg.metadata.sequence.stream, message))
        if self.auto_complete:
            await self.complete(message.cycle_id)

    async def on_snapshot(self, msg: Msg) -> None:
        message = MarketSnapshot.model_validate_json(msg.data)
        self.snapshots.append((msg.metadata.sequence.stream, message))

    async def on_tick(self, msg: Msg) -> None:
        self.ticks.append(MarketTick.model_validate_json(msg.data))
        self.tick_sequences.append(msg.metadata.sequence.stream)

    async def complete(self, cycle_id: str) -> None:
        completed = CycleCompleted(
            cycle_id=cycle_id,
            completed_at=datetime.now(UTC),
            duration_seconds=0.1,
            timed_out=False,
            outcomes=(),
        )
        await self.bus.publish(subjects.CYCLE_COMPLETED, completed, natural_id=cycle_id)

    async def status(self) -> SchedulerStatus:
        return await self.command(channels.SCHEDULER_STATUS.subject)

    async def command(self, subject: str) -> SchedulerStatus:
        return await self.bus.request(
            subject, SchedulerCommand(requested_by="test"), SchedulerStatus, timeout=2
        )

    def cycle_ids(self) -> list[str]:
        return [m.cycle_id for _, m in self.started]

    def has_ticks(self, count: int) -> bool:
        return len(self.ticks) == count

    async def first_cycle(self) -> CycleStarted:
        """Wait for the first cycle's event and return it."""
        await eventually(lambda: self.started, what="the first cycle")
        return self.started[0][1]

    async def completed(self, count: int) -> SchedulerStatus | None:
        """The status once ``count`` cycles completed and none is running, else None."""
        status = await self.status()
        done = status.cycles_completed == count and status.current_cycle_id is None
        return status if done else None

    def sequences(self) -> list[int]:
        return [m.sequence for _, m in self.started]

    async def saved_state(self) -> MarketState:
        """The market's state as saved in its key-value bucket."""
        kv = await self.bus.key_value(subjects.MARKET_STATE_BUCKET)
        return MarketState.model_validate_json((await kv.get(STATE_KEY)).value or b"")


@contextlib.asynccontextmanager
async def observing(nats_url: str, auto_complete: bool = False) -> AsyncIterator[Observer]:
    bus = await Bus.connect(nats_url, "observer", BusMetrics(CollectorRegistry()))
    await bus.ensure_streams()
    observer = Observer(bus, auto_complete)
    # Ordered push consumers with callbacks: they read the stream from its start and
    # carry each message's stream sequence, which is the order the market published in.
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await js.subscribe(subjects.CYCLE_STARTED, cb=observer.on_started, ordered_consumer=True)
    await js.subscribe(subjects.MARKET_SNAPSHOT, cb=observer.on_snapshot, ordered_consumer=True)
    await js.subscribe(subjects.MARKET_TICK, cb=observer.on_tick, ordered_consumer=True)
    try:
        yield observer
    finally:
        await nc.close()
        await bus.close()


@dataclass
class Restartable:
    """The market's settings and manual clock, kept across the hosts a test starts in turn."""

    settings: Settings
    clock: ManualClock = field(default_factory=lambda: ManualClock(T0))

    def run(self) -> AbstractAsyncContextManager[ServiceHost]:
        return running("market", MARKET, self.settings, self.clock)

    async def first_cycle_then_down(self, obs: Observer) -> CycleStarted:
        """Run the market until its first cycle starts, then stop it; that cycle."""
        async with self.run():
            return await obs.first_cycle()


@contextlib.asynccontextmanager
async def manual_market(
    nats_url: str, settings: Settings, auto_complete: bool = False
) -> AsyncIterator[tuple[Observer, ServiceHost, ManualClock]]:
    """The market on a manual clock at T0, with an observer of what it publishes."""
    clock = ManualClock(T0)
    async with (
        observing(nats_url, auto_complete) as obs,
        running("market", MARKET, settings, clock) as host,
    ):
        yield obs, host, clock


def metric(host: ServiceHost, name: str, **labels: str) -> float:
    return host.registry.get_sample_value(name, labels) or 0.0
