"""The market service in-process against a real nats-server, with short cycles."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import nats
import pytest
from nats.aio.msg import Msg
from prometheus_client import CollectorRegistry

from services.common import subjects
from services.common.bus import Bus, BusMetrics, RemoteError
from services.common.contracts import (
    CycleCompleted,
    CycleStarted,
    MarketSnapshot,
    MarketTick,
    Prices,
    PricesQuery,
    SchedulerCommand,
    SchedulerStatus,
    SnapshotQuery,
    SnapshotReply,
    SymbolQuery,
    SymbolReply,
)
from services.common.lineup import load_lineup
from services.common.runner import ServiceHost
from services.common.settings import DEFAULT_SYMBOLS, Settings
from services.market.service import build
from tests.support import eventually, running

FAST = {
    "ARENA_CYCLE_SECONDS": 0.5,
    "ARENA_DECISION_SECONDS": 0.3,
    "ARENA_TICK_SECONDS": 0.1,
    "MARKET_SOURCE": "simulator",
}


@dataclass
class Observer:
    """Everything the market publishes, with stream sequences; optionally completes cycles."""

    bus: Bus
    auto_complete: bool = False
    started: list[tuple[int, CycleStarted]] = field(default_factory=list)
    snapshots: list[tuple[int, MarketSnapshot]] = field(default_factory=list)
    ticks: list[MarketTick] = field(default_factory=list)

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
        return await self.command(subjects.SCHEDULER_STATUS)

    async def command(self, subject: str) -> SchedulerStatus:
        return await self.bus.request(
            subject, SchedulerCommand(requested_by="test"), SchedulerStatus, timeout=2
        )

    def cycle_ids(self) -> list[str]:
        return [m.cycle_id for _, m in self.started]


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


def _metric(host: ServiceHost, name: str, **labels: str) -> float:
    return host.registry.get_sample_value(name, labels) or 0.0


async def test_cycle_starts_then_snapshot_and_completion_starts_the_next(
    make_settings: Callable[..., Settings], nats_url: str
) -> None:
    agents = tuple(a.id for a in load_lineup(make_settings().agents_file).active)
    async with (
        observing(nats_url) as obs,
        running("market", build, make_settings(**FAST)) as host,
    ):
        await eventually(lambda: obs.started and obs.snapshots, what="first cycle and snapshot")
        (started_seq, started), (snapshot_seq, snapshot) = obs.started[0], obs.snapshots[0]
        assert started_seq < snapshot_seq
        assert snapshot.cycle_id == started.cycle_id
        assert started.agents == agents
        assert started.symbols == DEFAULT_SYMBOLS
        assert started.decision_deadline - started.started_at == timedelta(seconds=0.3)
        assert snapshot.decision_deadline == started.decision_deadline
        assert snapshot.source == "simulator"
        assert [s.symbol for s in snapshot.symbols] == list(DEFAULT_SYMBOLS)
        assert all(len(s.candles) == 100 for s in snapshot.symbols)
        assert all(s.indicators.ema_50 is not None for s in snapshot.symbols)

        status = await obs.status()
        assert status.current_cycle_id == started.cycle_id
        assert (status.cycles_started, status.cycles_completed) == (1, 0)
        assert status.source == "simulator" and status.running and not status.paused
        assert host.service is not None and host.service.readiness() == {"scheduler": True}

        # Prices keep ticking while the cycle waits for its completion.
        await eventually(
            lambda: len([t for t in obs.ticks if t.at > started.started_at]) >= 2,
            what="ticks during the cycle",
        )
        assert len(obs.started) == 1
        tick = obs.ticks[-1]
        assert [p.symbol for p in tick.prices] == list(DEFAULT_SYMBOLS)
        assert all(p.low <= p.last_price <= p.high for p in tick.prices)
        assert len({t.tick_id for t in obs.ticks}) == len(obs.ticks)

        await obs.complete(started.cycle_id)
        await eventually(lambda: len(obs.started) >= 2, what="the next cycle")
        second = obs.started[1][1]
        assert second.cycle_id != started.cycle_id and second.sequence == 2
        status = await obs.status()
        assert (status.cycles_completed, status.cycles_failed) == (1, 0)
        assert status.last_duration_seconds is not None and status.mean_duration_seconds

        reply = await obs.bus.request(
            subjects.MARKET_QUERY_SNAPSHOT, SnapshotQuery(), SnapshotReply
        )
        assert reply.snapshot is not None and reply.snapshot.cycle_id == second.cycle_id
        assert _metric(host, "arena_cycles_total", outcome="completed") == 1
        assert _metric(host, "arena_cycle_duration_seconds_count") == 1
        assert _metric(host, "arena_market_ticks_total") >= 2


async def test_a_cycle_without_completion_fails_after_its_deadline(
    make_settings: Callable[..., Settings], nats_url: str
) -> None:
    async with (
        observing(nats_url) as obs,
        running("market", build, make_settings(**FAST)) as host,
    ):
        await eventually(lambda: len(obs.started) >= 2, timeout=10, what="a cycle after a failure")
        first, second = obs.started[0][1], obs.started[1][1]
        assert second.started_at > first.decision_deadline
        status = await obs.status()
        assert status.cycles_failed >= 1 and status.cycles_completed == 0
        assert _metric(host, "arena_cycles_total", outcome="failed") >= 1

        # A completion for the failed cycle arrives late: ignored; the current one counts.
        await obs.complete(first.cycle_id)
        await obs.complete(second.cycle_id)

        async def completed_once() -> bool:
            return (await obs.status()).cycles_completed == 1

        await eventually(completed_once, what="the second cycle completed")
        assert _metric(host, "arena_cycles_total", outcome="completed") == 1


async def test_pause_stops_new_cycles_and_resume_restarts(
    make_settings: Callable[..., Settings], nats_url: str
) -> None:
    async with (
        observing(nats_url, auto_complete=True) as obs,
        running("market", build, make_settings(**FAST)),
    ):

        async def some_completed() -> bool:
            return (await obs.status()).cycles_completed >= 1

        await eventually(some_completed, what="a completed cycle")
        paused = await obs.command(subjects.SCHEDULER_PAUSE)
        assert paused.paused and paused.next_run_at is None

        async def idle() -> SchedulerStatus | None:
            status = await obs.status()
            return status if status.current_cycle_id is None else None

        before: SchedulerStatus = await eventually(idle, what="the running cycle to finish")
        # Fifteen ticks of 0.1 s span three cycle periods: no cycle may start meanwhile.
        seen = len(obs.ticks)
        await eventually(lambda: len(obs.ticks) >= seen + 15, what="ticks while paused")
        after = await obs.status()
        assert after.paused
        assert after.cycles_started == before.cycles_started

        resumed = await obs.command(subjects.SCHEDULER_RESUME)
        assert not resumed.paused and resumed.next_run_at is not None

        async def restarted() -> bool:
            return (await obs.status()).cycles_started > before.cycles_started

        await eventually(restarted, what="a cycle after resume")


async def test_trigger_starts_a_cycle_now_unless_one_is_running(
    make_settings: Callable[..., Settings], nats_url: str
) -> None:
    # A long cycle: any second cycle within the test comes from the trigger.
    settings = make_settings(**{**FAST, "ARENA_CYCLE_SECONDS": 60, "ARENA_DECISION_SECONDS": 30})
    async with observing(nats_url) as obs, running("market", build, settings):
        await eventually(lambda: obs.started, what="the first cycle")
        first = obs.started[0][1]
        with pytest.raises(RemoteError) as busy:
            await obs.command(subjects.SCHEDULER_TRIGGER)
        assert busy.value.reply.code == "bad_request"
        assert first.cycle_id in busy.value.reply.message

        await obs.complete(first.cycle_id)

        async def idle() -> bool:
            return (await obs.status()).current_cycle_id is None

        await eventually(idle, what="the first cycle to complete")
        triggered = await obs.command(subjects.SCHEDULER_TRIGGER)
        assert triggered.cycles_started == 2
        assert triggered.current_cycle_id not in (None, first.cycle_id)
        await eventually(lambda: len(obs.started) == 2, what="the triggered cycle's event")
        assert obs.cycle_ids()[1] == triggered.current_cycle_id
        assert triggered.next_run_at is not None
        # The schedule is untouched: the next slot is still a period after the first.
        assert (
            timedelta(seconds=59)
            < triggered.next_run_at - first.started_at
            <= timedelta(seconds=60)
        )


async def test_malformed_completion_is_dead_lettered_and_the_service_goes_on(
    make_settings: Callable[..., Settings], nats_url: str
) -> None:
    async with (
        observing(nats_url) as obs,
        running("market", build, make_settings(**FAST)) as host,
    ):
        dead = await obs.bus._nc.subscribe(subjects.dead_letter("market"))
        await eventually(lambda: obs.started, what="the first cycle")
        await obs.bus.publish_raw(subjects.CYCLE_COMPLETED, b'{"cycle_id": 5}')
        letter = await dead.next_msg(timeout=5)
        assert letter.data == b'{"cycle_id": 5}'
        assert letter.headers is not None
        assert letter.headers["Arena-Dlq-Subject"] == subjects.CYCLE_COMPLETED
        await eventually(
            lambda: (
                _metric(
                    host,
                    "arena_messages_dead_lettered_total",
                    consumer=subjects.CYCLE_COMPLETED,
                    reason="malformed",
                )
                == 1
            ),
            what="the dead letter counted",
        )

        current = (await obs.status()).current_cycle_id
        assert current is not None
        await obs.complete(current)

        async def completed() -> bool:
            return (await obs.status()).cycles_completed == 1

        await eventually(completed, what="a completion after the malformed one")


async def test_price_and_symbol_queries(
    make_settings: Callable[..., Settings], nats_url: str
) -> None:
    async with observing(nats_url) as obs, running("market", build, make_settings(**FAST)):
        prices = await obs.bus.request(subjects.MARKET_QUERY_PRICES, PricesQuery(), Prices)
        assert prices.source == "simulator"
        await eventually(lambda: obs.snapshots, what="a snapshot")
        snapshot = obs.snapshots[0][1]
        reply = await obs.bus.request(
            subjects.MARKET_QUERY_SYMBOL, SymbolQuery(symbol="BTCUSDT"), SymbolReply
        )
        assert reply.cycle_id == snapshot.cycle_id
        assert reply.symbol == snapshot.symbol("BTCUSDT")
        assert reply.symbol.context_4h is not None and reply.symbol.filters is not None
        await eventually(lambda: obs.ticks, what="a tick")

        async def tick_prices() -> Prices | None:
            answer = await obs.bus.request(subjects.MARKET_QUERY_PRICES, PricesQuery(), Prices)
            return answer if answer.at is not None and answer.at > snapshot.taken_at else None

        latest: Prices = await eventually(tick_prices, what="prices from a tick")
        assert [p.symbol for p in latest.prices] == list(DEFAULT_SYMBOLS)
        with pytest.raises(RemoteError) as missing:
            await obs.bus.request(
                subjects.MARKET_QUERY_SYMBOL, SymbolQuery(symbol="FOOUSDT"), SymbolReply
            )
        assert missing.value.reply.code == "not_found"
        assert "FOOUSDT" in missing.value.reply.message
        assert "BTCUSDT, ETHUSDT" in missing.value.reply.message


async def test_a_trigger_while_paused_runs_one_cycle_and_stays_paused(
    make_settings: Callable[..., Settings], nats_url: str
) -> None:
    settings = make_settings(**{**FAST, "ARENA_CYCLE_SECONDS": 60, "ARENA_DECISION_SECONDS": 30})
    async with observing(nats_url) as obs, running("market", build, settings):
        await eventually(lambda: obs.started, what="the first cycle")
        paused = await obs.command(subjects.SCHEDULER_PAUSE)
        assert paused.paused
        await obs.complete(obs.started[0][1].cycle_id)

        async def idle() -> bool:
            return (await obs.status()).current_cycle_id is None

        await eventually(idle, what="the first cycle to complete")
        # The documented behaviour (docs/api.md): a manual cycle, the pause holds the timer.
        triggered = await obs.command(subjects.SCHEDULER_TRIGGER)
        assert triggered.paused and triggered.cycles_started == 2
        await eventually(lambda: len(obs.started) == 2, what="the triggered cycle's event")
