"""The market service in-process against a real nats-server, on a manual clock.

Time moves only when a test advances the clock, so what happens between two advances is
decided by the test, not by how busy the machine is.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest

from services.common import channels, subjects
from services.common.bus import RemoteError
from services.common.contracts import (
    Prices,
    PricesQuery,
    SchedulerStatus,
    SnapshotQuery,
    SnapshotReply,
    SymbolQuery,
    SymbolReply,
)
from services.common.lineup import load_lineup
from services.common.settings import DEFAULT_SYMBOLS, Settings
from tests.market.observer import MANUAL, Observer, at, manual_market, metric
from tests.support import eventually, publish_raw


async def _idle(obs: Observer) -> SchedulerStatus | None:
    status = await obs.status()
    return status if status.current_cycle_id is None else None


async def test_cycle_starts_then_snapshot_and_completion_starts_the_next_slot(
    make_settings: Callable[..., Settings], nats_url: str
) -> None:
    agents = tuple(a.id for a in load_lineup(make_settings().agents_file).active)
    async with manual_market(nats_url, make_settings(**MANUAL)) as (obs, host, clock):
        await eventually(lambda: obs.started and obs.snapshots, what="first cycle and snapshot")
        (started_seq, started), (snapshot_seq, snapshot) = obs.started[0], obs.snapshots[0]
        assert started_seq < snapshot_seq
        assert snapshot.cycle_id == started.cycle_id
        assert (started.sequence, started.started_at) == (1, at(0))
        assert started.agents == agents
        assert started.symbols == DEFAULT_SYMBOLS
        assert started.decision_deadline == at(30)
        assert snapshot.decision_deadline == started.decision_deadline
        assert snapshot.source == "simulator"
        assert [s.symbol for s in snapshot.symbols] == list(DEFAULT_SYMBOLS)
        assert all(s.indicators.ema_50 is not None for s in snapshot.symbols)
        # The event leaves the candles out; the market serves the full snapshot by cycle id.
        assert snapshot.candles_omitted and all(s.candles == () for s in snapshot.symbols)
        held = await obs.bus.request(
            channels.MARKET_QUERY_SNAPSHOT.subject,
            SnapshotQuery(cycle_id=started.cycle_id),
            SnapshotReply,
        )
        assert held.snapshot is not None and not held.snapshot.candles_omitted
        assert all(len(s.candles) == 100 for s in held.snapshot.symbols)
        assert held.snapshot.without_candles() == snapshot
        unknown = SnapshotQuery(cycle_id="no-such-cycle")
        with pytest.raises(RemoteError, match="not_found: the market no longer holds"):
            await obs.bus.request(channels.MARKET_QUERY_SNAPSHOT.subject, unknown, SnapshotReply)

        status = await obs.status()
        assert status.current_cycle_id == started.cycle_id
        assert (status.cycles_started, status.cycles_completed) == (1, 0)
        assert status.source == "simulator" and status.running and not status.paused
        assert status.next_run_at == at(60)
        assert host.service is not None and host.service.readiness() == {"scheduler": True}

        # Prices keep ticking while the cycle waits for its completion.
        for n in (1, 2):
            clock.advance(10)
            await eventually(functools.partial(obs.has_ticks, n), what=f"tick {n}")
        assert [t.at for t in obs.ticks] == [at(10), at(20)]
        tick = obs.ticks[-1]
        assert [p.symbol for p in tick.prices] == list(DEFAULT_SYMBOLS)
        assert all(p.low <= p.last_price <= p.high for p in tick.prices)
        assert len({t.tick_id for t in obs.ticks}) == 2

        await obs.complete(started.cycle_id)
        status = await eventually(lambda: _idle(obs), what="the first cycle completed")
        assert (status.cycles_completed, status.cycles_failed) == (1, 0)
        assert status.last_duration_seconds == 20 and status.mean_duration_seconds == 20
        assert len(obs.started) == 1

        # The next cycle waits for its slot on the grid.
        clock.advance(40)
        await eventually(lambda: len(obs.started) == 2, what="the next cycle")
        second = obs.started[1][1]
        assert (second.sequence, second.started_at) == (2, at(60))
        reply = await obs.bus.request(
            channels.MARKET_QUERY_SNAPSHOT.subject, SnapshotQuery(), SnapshotReply
        )
        assert reply.snapshot is not None and reply.snapshot.cycle_id == second.cycle_id
        assert metric(host, "arena_cycles_total", outcome="completed") == 1
        assert metric(host, "arena_cycle_duration_seconds_count") == 1
        assert metric(host, "arena_market_ticks_total") == len(obs.ticks)


async def test_a_cycle_without_completion_fails_after_its_deadline_plus_grace(
    make_settings: Callable[..., Settings], nats_url: str
) -> None:
    async with manual_market(nats_url, make_settings(**MANUAL)) as (obs, host, clock):
        first = await obs.first_cycle()
        for n in range(1, 5):
            clock.advance(10)
            await eventually(functools.partial(obs.has_ticks, n), what=f"tick {n}")
        clock.advance(4)
        assert (await obs.status()).current_cycle_id == first.cycle_id

        clock.advance(1)
        status = await eventually(lambda: _idle(obs), what="the cycle failed at 45 s")
        assert (status.cycles_failed, status.cycles_completed) == (1, 0)
        assert metric(host, "arena_cycles_total", outcome="failed") == 1

        clock.advance(15)
        await eventually(lambda: len(obs.started) == 2, what="the next slot's cycle")
        second = obs.started[1][1]
        assert second.started_at == at(60) > first.decision_deadline

        # A completion for the failed cycle arrives late: ignored; the current one counts.
        await obs.complete(first.cycle_id)
        await obs.complete(second.cycle_id)

        async def completed_once() -> bool:
            return (await obs.status()).cycles_completed == 1

        await eventually(completed_once, what="the second cycle completed")
        assert metric(host, "arena_cycles_total", outcome="completed") == 1


async def test_pause_stops_new_cycles_and_resume_continues_on_the_grid(
    make_settings: Callable[..., Settings], nats_url: str
) -> None:
    settings = make_settings(**MANUAL)
    async with manual_market(nats_url, settings, auto_complete=True) as (obs, _host, clock):

        async def first_completed() -> SchedulerStatus | None:
            status = await obs.status()
            return status if status.cycles_completed == 1 else None

        before: SchedulerStatus = await eventually(first_completed, what="a completed cycle")
        assert before.current_cycle_id is None
        paused = await obs.command(channels.SCHEDULER_PAUSE.subject)
        assert paused.paused and paused.next_run_at is None

        # Three slots pass while paused (60, 120, 180 s); ticks go on, cycles do not.
        for n in range(1, 19):
            clock.advance(10)
            await eventually(functools.partial(obs.has_ticks, n), what=f"tick {n} while paused")
        after = await obs.status()
        assert after.paused
        assert (after.cycles_started, after.cycles_skipped) == (1, 0)
        assert len(obs.started) == 1

        resumed = await obs.command(channels.SCHEDULER_RESUME.subject)
        assert not resumed.paused
        # The 180 s slot is due as the pause ends: it runs at once.
        await eventually(lambda: len(obs.started) == 2, what="a cycle after resume")
        assert obs.started[1][1].started_at == at(180)
        # Slots inside a pause were not missed: none is counted skipped.
        assert (await obs.status()).cycles_skipped == 0


async def test_trigger_starts_a_cycle_now_unless_one_is_running(
    make_settings: Callable[..., Settings], nats_url: str
) -> None:
    async with manual_market(nats_url, make_settings(**MANUAL)) as (obs, _host, clock):
        first = await obs.first_cycle()
        with pytest.raises(RemoteError) as busy:
            await obs.command(channels.SCHEDULER_TRIGGER.subject)
        assert busy.value.reply.code == "bad_request"
        assert first.cycle_id in busy.value.reply.message

        await obs.complete(first.cycle_id)
        await eventually(lambda: _idle(obs), what="the first cycle to complete")
        clock.advance(5)
        triggered = await obs.command(channels.SCHEDULER_TRIGGER.subject)
        assert triggered.cycles_started == 2
        assert triggered.current_cycle_id not in (None, first.cycle_id)
        await eventually(lambda: len(obs.started) == 2, what="the triggered cycle's event")
        assert obs.cycle_ids()[1] == triggered.current_cycle_id
        assert obs.started[1][1].started_at == at(5)
        # The schedule is untouched: the next slot is still a period after the first.
        assert triggered.next_run_at == at(60)


async def test_malformed_completion_is_dead_lettered_and_the_service_goes_on(
    make_settings: Callable[..., Settings], nats_url: str
) -> None:
    async with manual_market(nats_url, make_settings(**MANUAL)) as (obs, host, _clock):
        dead = await obs.bus._nc.subscribe(subjects.dead_letter("market"))
        await obs.first_cycle()
        await publish_raw(obs.bus, subjects.CYCLE_COMPLETED, b'{"cycle_id": 5}')
        letter = await dead.next_msg(timeout=5)
        assert letter.data == b'{"cycle_id": 5}'
        assert letter.headers is not None
        assert letter.headers["Arena-Dlq-Subject"] == subjects.CYCLE_COMPLETED
        await eventually(
            lambda: (
                metric(
                    host,
                    "arena_messages_dead_lettered_total",
                    consumer="market-completions",
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
    async with manual_market(nats_url, make_settings(**MANUAL)) as (obs, _host, clock):
        prices = await obs.bus.request(channels.MARKET_QUERY_PRICES.subject, PricesQuery(), Prices)
        assert prices.source == "simulator"
        await eventually(lambda: obs.snapshots, what="a snapshot")
        snapshot = obs.snapshots[0][1]
        reply = await obs.bus.request(
            channels.MARKET_QUERY_SYMBOL.subject, SymbolQuery(symbol="BTCUSDT"), SymbolReply
        )
        assert reply.cycle_id == snapshot.cycle_id
        assert reply.symbol.model_copy(update={"candles": ()}) == snapshot.symbol("BTCUSDT")
        assert len(reply.symbol.candles) == 100
        assert reply.symbol.context_4h is not None and reply.symbol.filters is not None

        clock.advance(10)
        await eventually(lambda: obs.ticks, what="a tick")
        latest = await obs.bus.request(channels.MARKET_QUERY_PRICES.subject, PricesQuery(), Prices)
        assert latest.at == at(10) > snapshot.taken_at
        assert latest.prices == obs.ticks[0].prices
        assert [p.symbol for p in latest.prices] == list(DEFAULT_SYMBOLS)
        with pytest.raises(RemoteError) as missing:
            await obs.bus.request(
                channels.MARKET_QUERY_SYMBOL.subject, SymbolQuery(symbol="FOOUSDT"), SymbolReply
            )
        assert missing.value.reply.code == "not_found"
        assert "FOOUSDT" in missing.value.reply.message
        assert "BTCUSDT, ETHUSDT" in missing.value.reply.message


async def test_a_trigger_while_paused_runs_one_cycle_and_stays_paused(
    make_settings: Callable[..., Settings], nats_url: str
) -> None:
    async with manual_market(nats_url, make_settings(**MANUAL)) as (obs, _host, _clock):
        first = await obs.first_cycle()
        paused = await obs.command(channels.SCHEDULER_PAUSE.subject)
        assert paused.paused
        await obs.complete(first.cycle_id)
        await eventually(lambda: _idle(obs), what="the first cycle to complete")
        # The documented behaviour (docs/api.md): a manual cycle, the pause holds the timer.
        triggered = await obs.command(channels.SCHEDULER_TRIGGER.subject)
        assert triggered.paused and triggered.cycles_started == 2
        await eventually(lambda: len(obs.started) == 2, what="the triggered cycle's event")
