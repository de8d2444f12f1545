"""A restarted market (a new ServiceHost on the same NATS) carries on where it stopped."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.common import channels, subjects
from services.common.bus import RemoteError
from services.common.clock import ManualClock
from services.common.contracts import SchedulerStatus, SnapshotQuery, SnapshotReply
from services.common.instruments import load_instruments
from services.common.settings import Settings
from services.market.service import build
from services.market.simulator import SimulatorSource
from services.market.state import MarketState
from services.market.state_store import STATE_KEY, StateStore
from tests.market.observer import MANUAL, MARKET, T0, Observer, Restartable, at, metric, observing
from tests.support import eventually, running

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "replay"
DAY_START = datetime(2024, 3, 1, tzinfo=UTC)


async def _ticks(obs: Observer, clock: ManualClock, count: int, every: float = 10) -> None:
    """Advance the clock tick by tick until ``count`` ticks were published in all."""
    while len(obs.ticks) < count:
        seen = len(obs.ticks)
        clock.advance(every)
        await eventually(functools.partial(obs.has_ticks, seen + 1), what=f"tick {seen + 1}")


async def test_a_restarted_market_is_still_paused_and_continues_the_sequence(
    market: Restartable, obs: Observer
) -> None:
    clock = market.clock
    obs.auto_complete = True
    async with market.run():
        await eventually(lambda: obs.completed(1), what="the first cycle")
        clock.advance(60)
        await eventually(lambda: obs.completed(2), what="the second cycle")
        assert (await obs.command(channels.SCHEDULER_PAUSE.subject)).paused

    clock.advance(30)
    async with market.run():
        status = await obs.status()
        assert status.paused and status.current_cycle_id is None
        assert (status.cycles_started, status.cycles_completed) == (2, 2)
        # The 120 s and 180 s slots pass while paused.
        await _ticks(obs, clock, 10)
        assert len(obs.started) == 2
        resumed = await obs.command(channels.SCHEDULER_RESUME.subject)
        assert not resumed.paused
        await eventually(lambda: len(obs.started) == 3, what="a cycle after resume")

    assert obs.sequences() == [1, 2, 3]
    # Resumed at 180 s, when the 180 s slot is due.
    assert obs.started[2][1].started_at == at(180)


async def test_the_price_path_continues_as_if_the_market_never_stopped(
    market: Restartable, obs: Observer
) -> None:
    clock, settings = market.clock, market.settings
    obs.auto_complete = True
    async with market.run():
        await eventually(lambda: obs.completed(1), what="the first cycle")
        await _ticks(obs, clock, 2)
        kv = await obs.bus.key_value(subjects.MARKET_STATE_BUCKET)

        async def saved_after_two() -> bytes | None:
            entry = await kv.get(STATE_KEY)
            state = await obs.saved_state()
            return entry.value if state.source.ticks == 2 else None

        before_third: bytes = await eventually(saved_after_two, what="tick 2 recorded")
        await _ticks(obs, clock, 3)

        async def third_recorded() -> bool:
            return (await obs.saved_state()).source.ticks == 3

        await eventually(third_recorded, what="tick 3 recorded")

    # As if the process had died after publishing tick 3 but before recording it.
    await kv.put(STATE_KEY, before_third)
    clock.advance(5)
    async with market.run() as host:
        # Tick 3 is taken again, published under the same id, and dropped as a copy.
        clock.advance(10)
        await eventually(
            lambda: metric(host, "arena_messages_duplicate_publish_total", type="MarketTick") == 1,
            what="tick 3 again, dropped as a duplicate",
        )
        await _ticks(obs, clock, 4)  # 55 s
        clock.advance(5)  # the 60 s slot, between two ticks
        await eventually(lambda: len(obs.snapshots) == 2, what="the second cycle's snapshot")
        # The event leaves the candles out; the market serves them by cycle id.
        held = await obs.bus.request(
            channels.MARKET_QUERY_SNAPSHOT.subject,
            SnapshotQuery(cycle_id=obs.snapshots[1][1].cycle_id),
            SnapshotReply,
        )
        await _ticks(obs, clock, 5, every=5)  # 65 s
        await _ticks(obs, clock, 6)  # 75 s

    reference = SimulatorSource(
        settings.seed, settings.symbols, T0, load_instruments(settings.instruments_file)
    )
    expected = [await reference.tick(T0) for _ in range(6)]
    assert [t.prices for t in obs.ticks] == expected
    ids = [t.tick_id for t in obs.ticks]
    assert len(set(ids)) == 6 and [i.rsplit("-", 1)[1] for i in ids] == [
        str(n) for n in range(1, 7)
    ]

    # The snapshot after the restart shows the walk after four ticks, history included.
    event = obs.snapshots[1][1]
    assert event.candles_omitted and all(s.candles == () for s in event.symbols)
    snapshot = held.snapshot
    assert snapshot is not None and snapshot.cycle_id == event.cycle_id
    assert snapshot.taken_at == at(60)
    reference = SimulatorSource(
        settings.seed, settings.symbols, T0, load_instruments(settings.instruments_file)
    )
    for _ in range(4):
        await reference.tick(T0)
    walked = await reference.snapshot_data(at(60))
    for data in walked.symbols:
        shown = snapshot.symbol(data.symbol)
        assert shown is not None
        assert (shown.last_price, shown.mark_price) == (
            data.ticker.last_price,
            data.ticker.mark_price,
        )
        assert (shown.high_24h, shown.low_24h, shown.volume_24h) == (
            data.ticker.high_24h,
            data.ticker.low_24h,
            data.ticker.volume_24h,
        )
        assert shown.candles == data.candles


async def test_a_restart_during_a_cycle_waits_for_that_cycle(
    market: Restartable, obs: Observer
) -> None:
    clock = market.clock
    async with market.run():
        first = await obs.first_cycle()
        await _ticks(obs, clock, 1)

    async with market.run():
        status = await obs.status()
        assert status.current_cycle_id == first.cycle_id and status.cycles_started == 1
        with pytest.raises(RemoteError) as busy:
            await obs.command(channels.SCHEDULER_TRIGGER.subject)
        assert first.cycle_id in busy.value.reply.message
        await _ticks(obs, clock, 3)
        assert len(obs.started) == 1

        await obs.complete(first.cycle_id)
        done: SchedulerStatus = await eventually(
            lambda: obs.completed(1), what="the first cycle completed"
        )
        assert done.last_duration_seconds == 30  # measured across the restart
        clock.advance(30)
        await eventually(lambda: len(obs.started) == 2, what="the next slot's cycle")

    assert obs.sequences() == [1, 2]
    assert obs.started[1][1].started_at == at(60)


async def test_a_completion_published_while_the_market_was_down_ends_its_cycle(
    market: Restartable, obs: Observer
) -> None:
    clock = market.clock
    first = await market.first_cycle_then_down(obs)
    await obs.complete(first.cycle_id)

    clock.advance(20)
    async with market.run():
        await eventually(lambda: obs.completed(1), what="the completion taken up")
        clock.advance(40)
        await eventually(lambda: len(obs.started) == 2, what="the next slot's cycle")
        assert (await obs.status()).cycles_failed == 0

    assert obs.sequences() == [1, 2]


async def test_a_cycle_running_at_a_restart_still_fails_at_its_deadline_plus_grace(
    market: Restartable, obs: Observer
) -> None:
    clock = market.clock
    await market.first_cycle_then_down(obs)
    clock.advance(20)
    async with market.run():
        clock.advance(24)
        assert (await obs.status()).current_cycle_id == obs.cycle_ids()[0]
        clock.advance(1)

        async def failed() -> bool:
            status = await obs.status()
            return status.cycles_failed == 1 and status.current_cycle_id is None

        await eventually(failed, what="the cycle failed at 45 s")
        clock.advance(15)
        await eventually(lambda: len(obs.started) == 2, what="the next slot's cycle")

    assert obs.sequences() == [1, 2]


async def test_a_replay_resumes_at_its_bar(
    make_settings: Callable[..., Settings], nats_url: str
) -> None:
    clock = ManualClock(T0)
    settings = make_settings(
        MARKET_SOURCE=f"replay:{FIXTURES}",
        ARENA_SYMBOLS="BTCUSDT,ETHUSDT",
        ARENA_CYCLE_SECONDS=300,
        ARENA_DECISION_SECONDS=5,
    )
    async with observing(nats_url) as obs:
        async with running("market", build, settings, clock):
            await obs.first_cycle()
            await obs.complete(obs.cycle_ids()[0])
            await eventually(lambda: len(obs.started) == 2, what="the second cycle")

        async with running("market", build, settings, clock):
            await obs.complete(obs.cycle_ids()[1])
            await eventually(lambda: len(obs.started) == 3, what="the third cycle")
            await eventually(lambda: len(obs.ticks) == 10, what="ten bars")

    assert obs.sequences() == [1, 2, 3]
    assert [m.started_at for _, m in obs.started] == [
        DAY_START + timedelta(minutes=m) for m in (500, 505, 510)
    ]
    assert [t.at for t in obs.ticks] == [DAY_START + timedelta(minutes=m) for m in range(501, 511)]
    assert len({t.tick_id for t in obs.ticks}) == 10


class _ForgetsCycleTwo(StateStore):
    """Cannot record the state once cycle 2 is running (after its lot is published), as if
    the market died between publishing it and recording it."""

    failed = False

    async def save(self, state: MarketState) -> None:
        if state.sequence == 2 and state.current is not None and not self.failed:
            type(self).failed = True
            raise ConnectionError("the state is not recorded")
        await super().save(state)


async def test_a_replay_restarted_between_publishing_a_cycle_and_recording_it_publishes_it_once(
    make_settings: Callable[..., Settings], nats_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="services.market.keeper")
    settings = make_settings(
        MARKET_SOURCE=f"replay:{FIXTURES}",
        ARENA_SYMBOLS="BTCUSDT,ETHUSDT",
        ARENA_CYCLE_SECONDS=300,
        ARENA_DECISION_SECONDS=5,
    )
    clock = ManualClock(T0)
    _ForgetsCycleTwo.failed = False
    forgetful = functools.partial(build, store=_ForgetsCycleTwo)
    async with observing(nats_url) as obs:
        async with running("market", forgetful, settings, clock):
            await obs.first_cycle()
            await obs.complete(obs.cycle_ids()[0])
            await eventually(lambda: len(obs.started) == 2, what="the second cycle")
            await eventually(lambda: _ForgetsCycleTwo.failed, what="its state not recorded")
        assert any("could not be saved" in r.getMessage() for r in caplog.records)
        recorded = await obs.saved_state()
        assert recorded.sequence == 1 and recorded.current is None

        # The restart takes the same bars and cycle 2 again: the same ids, stored once.
        async with running("market", build, settings, clock) as host:

            async def cycle_two_again() -> bool:
                return (await obs.status()).current_cycle_id == obs.cycle_ids()[1]

            await eventually(cycle_two_again, what="cycle 2 taken up again")
            for kind, copies in (("MarketTick", 5), ("CycleStarted", 1), ("MarketSnapshot", 1)):
                dropped = metric(host, "arena_messages_duplicate_publish_total", type=kind)
                assert dropped == copies, kind
            await obs.complete(obs.cycle_ids()[1])
            await eventually(lambda: len(obs.started) == 3, what="the third cycle")
            await eventually(lambda: len(obs.ticks) == 10, what="ten bars")
        recorded = await obs.saved_state()

    assert obs.sequences() == [1, 2, 3]
    assert [t.at for t in obs.ticks] == [DAY_START + timedelta(minutes=m) for m in range(501, 511)]
    assert len({t.tick_id for t in obs.ticks}) == 10
    assert len(obs.snapshots) == 3
    assert recorded.sequence == 3 and recorded.source.ticks == 10


async def test_an_unreadable_saved_state_is_logged_and_the_market_starts_afresh(
    make_settings: Callable[..., Settings], nats_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    clock = ManualClock(T0)
    async with observing(nats_url) as obs:
        kv = await obs.bus.key_value(subjects.MARKET_STATE_BUCKET)
        await kv.put(STATE_KEY, b'{"paused": "maybe"}')
        async with running("market", MARKET, make_settings(**MANUAL), clock):
            await eventually(lambda: obs.started, what="a first cycle")
            assert not (await obs.status()).paused
        assert obs.sequences() == [1]
        assert any(
            "unreadable" in r.getMessage() and '{"paused": "maybe"}' in r.getMessage()
            for r in caplog.records
        )
        assert (await obs.saved_state()).sequence == 1
