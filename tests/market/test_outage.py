"""NATS goes down under a running market: nothing is lost silently.

Each test runs its own nats-server (file store), stops it mid-run and starts it again on
the same port and store, as a restarted or briefly unreachable server would be.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
import pytest
from nats.aio.msg import Msg
from prometheus_client import CollectorRegistry

from devstack.nats_server import EmbeddedNats
from services.common import channels, subjects
from services.common.bus import Bus, BusMetrics, ConsumerSpec, Delivery
from services.common.clock import ManualClock
from services.common.contracts import (
    CycleCompleted,
    CycleStarted,
    MarketTick,
    SchedulerCommand,
    SchedulerStatus,
    TickPrice,
)
from services.common.runner import Factory, ServiceContext
from services.common.settings import Settings
from services.market.metrics import MarketMetrics
from services.market.replay import ReplaySource
from services.market.schedule import SchedulerConfig
from services.market.scheduler import CycleScheduler
from services.market.service import MarketService
from services.market.state_store import StateStore
from tests.market.observer import MANUAL, MARKET, T0, metric
from tests.support import eventually, running

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "replay"
DAY_START = datetime(2024, 3, 1, tzinfo=UTC)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedNats]:
    nats_server = EmbeddedNats(tmp_path / "outage-nats")
    nats_server.start()
    try:
        yield nats_server
    finally:
        nats_server.stop()


@pytest.fixture
async def helper(server: EmbeddedNats) -> AsyncIterator[Bus]:
    """A client that completes every cycle, reconnecting like the services do."""
    bus = await Bus.connect(server.url, "completer", BusMetrics(CollectorRegistry()))
    await bus.ensure_streams()

    async def complete(started: CycleStarted, _: Delivery) -> None:
        completed = CycleCompleted(
            cycle_id=started.cycle_id,
            completed_at=datetime.now(UTC),
            duration_seconds=0.1,
            timed_out=False,
            outcomes=(),
        )
        await bus.publish(subjects.CYCLE_COMPLETED, completed, natural_id=started.cycle_id)

    await bus.consume(
        ConsumerSpec("test-completer", subjects.CYCLE_STARTED), CycleStarted, complete
    )
    try:
        yield bus
    finally:
        await bus.close()


async def _status(bus: Bus) -> SchedulerStatus:
    return await bus.request(
        channels.SCHEDULER_STATUS.subject, SchedulerCommand(requested_by="test"), SchedulerStatus
    )


async def _status_reaches(
    bus: Bus, check: Callable[[SchedulerStatus], bool], what: str, timeout: float = 15
) -> None:
    """Wait until the scheduler's status passes ``check``."""

    async def reached() -> bool:
        return check(await _status(bus))

    await eventually(reached, timeout=timeout, what=what)


async def _retried_then_back(
    caplog: pytest.LogCaptureFixture, server: EmbeddedNats, doing: str, what: str
) -> None:
    """Wait until ``doing`` was logged as retried, then start the server again."""
    await eventually(lambda: _logged(caplog, doing, "retrying"), timeout=30, what=what)
    await asyncio.to_thread(server.start)


async def _stored(url: str, subject: str, count: int) -> list[bytes]:
    """The first ``count`` messages the stream holds on ``subject``."""
    seen: list[bytes] = []

    async def record(msg: Msg) -> None:
        seen.append(msg.data)

    nc = await nats.connect(url)
    try:
        await nc.jetstream().subscribe(subject, cb=record, ordered_consumer=True)
        await eventually(lambda: len(seen) >= count, what=f"{count} messages on {subject}")
    finally:
        await nc.close()
    return seen


def _logged(caplog: pytest.LogCaptureFixture, *parts: str) -> bool:
    return any(all(p in r.getMessage() for p in parts) for r in caplog.records)


class _OutageReplay(ReplaySource):
    """The fixture data; NATS goes down while bar 510 is played."""

    server: EmbeddedNats
    down: asyncio.Event

    @classmethod
    def with_outage(cls, server: EmbeddedNats, down: asyncio.Event) -> _OutageReplay:
        source = cls.from_directory(FIXTURES, ("BTCUSDT", "ETHUSDT"))
        assert isinstance(source, cls)
        source.server, source.down = server, down
        return source

    async def tick(self, now: datetime) -> tuple[TickPrice, ...]:
        prices = await super().tick(now)
        if self.now() == DAY_START + timedelta(minutes=510):
            self.server.stop()
            self.down.set()
        return prices


def _outage_market(server: EmbeddedNats, down: asyncio.Event) -> Factory:
    async def build(ctx: ServiceContext) -> MarketService:
        source = _OutageReplay.with_outage(server, down)
        scheduler = CycleScheduler(
            bus=ctx.bus,
            clock=ctx.clock,
            source=source,
            config=SchedulerConfig.from_settings(ctx.settings, ()),
            metrics=MarketMetrics(ctx.registry),
            store=StateStore(ctx.bus),
            paced=source,
            resumable=source,
        )
        return MarketService(ctx.bus, scheduler, source, ctx.settings.symbols)

    return build


async def test_a_replayed_tick_is_retried_until_nats_takes_it(
    make_settings: Callable[..., Settings],
    server: EmbeddedNats,
    helper: Bus,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="services.market.retry")
    settings = make_settings(
        NATS_URL=server.url,
        ARENA_SYMBOLS="BTCUSDT,ETHUSDT",
        ARENA_CYCLE_SECONDS=300,
        ARENA_DECISION_SECONDS=60,
    )
    down = asyncio.Event()
    async with running("market", _outage_market(server, down), settings):
        await asyncio.wait_for(down.wait(), timeout=30)
        await _retried_then_back(caplog, server, "publishing tick", "the tick of bar 510 retried")

        await _status_reaches(
            helper,
            lambda status: status.cycles_completed == 41 and status.next_run_at is None,
            "the whole replay despite the outage",
            timeout=60,
        )
        assert (await _status(helper)).cycles_failed == 0

    ticks = [
        MarketTick.model_validate_json(d)
        for d in await _stored(server.url, "arena.market.tick", 200)
    ]
    assert [t.at for t in ticks] == [DAY_START + timedelta(minutes=m) for m in range(501, 701)]
    assert len({t.tick_id for t in ticks}) == 200
    assert _logged(caplog, "publishing tick", "done after")


async def test_a_cycle_start_waits_out_a_short_outage_and_a_live_tick_is_skipped_loudly(
    make_settings: Callable[..., Settings],
    server: EmbeddedNats,
    helper: Bus,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    clock = ManualClock(T0)
    settings = make_settings(**MANUAL, NATS_URL=server.url)
    async with running("market", MARKET, settings, clock) as host:
        await _status_reaches(
            helper,
            lambda status: status.cycles_completed == 1 and status.current_cycle_id is None,
            "the first cycle completed",
        )
        server.stop()

        clock.advance(10)
        await eventually(
            lambda: metric(host, "arena_market_ticks_unpublished_total") == 1,
            timeout=30,
            what="the tick during the outage skipped",
        )
        assert _logged(caplog, "not published, skipped")

        clock.advance(50)
        await _retried_then_back(
            caplog, server, "recording the market state", "the cycle start retried"
        )

        await _status_reaches(
            helper,
            lambda status: status.cycles_completed == 2,
            "the second cycle after the outage",
            timeout=30,
        )
        status = await _status(helper)
        assert (status.cycles_started, status.cycles_failed) == (2, 0)

    started = [
        CycleStarted.model_validate_json(d)
        for d in await _stored(server.url, "arena.cycle.started", 2)
    ]
    assert [s.sequence for s in started] == [1, 2]
    assert started[1].started_at == T0 + timedelta(seconds=60)
