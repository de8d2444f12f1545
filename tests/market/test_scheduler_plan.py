"""The scheduler's slot arithmetic (pure): coalescing, misfire grace, resume."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest

from devstack.ports import free_port
from services.common.clock import ManualClock
from services.common.settings import Settings
from services.market.schedule import RunPlan, SchedulerConfig, bars_until, next_slot, plan_run
from services.market.selection import create_source
from services.market.source import SourceError

T0 = datetime(2025, 1, 1, 12, tzinfo=UTC)
GRACE = timedelta(seconds=30)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_slot_on_time_runs() -> None:
    assert plan_run(T0, T0, 300, GRACE) == RunPlan(True, _at(300), 0)
    assert plan_run(T0, _at(-1), 300, GRACE) == RunPlan(False, T0, 0)


def test_a_slot_late_within_the_grace_still_runs() -> None:
    assert plan_run(T0, _at(29), 300, GRACE) == RunPlan(True, _at(300), 0)


def test_a_slot_later_than_the_grace_is_skipped_and_the_next_slot_waits() -> None:
    assert plan_run(T0, _at(31), 300, GRACE) == RunPlan(False, _at(300), 1)


def test_missed_slots_coalesce_into_the_latest() -> None:
    # Three slots passed (0, 300, 600 missed; 900 is 10 s late): one run, three skipped.
    assert plan_run(T0, _at(910), 300, GRACE) == RunPlan(True, _at(1200), 3)
    # The latest slot is itself too late: nothing runs before the next slot.
    assert plan_run(T0, _at(950), 300, GRACE) == RunPlan(False, _at(1200), 4)


def test_next_slot_stays_on_the_grid() -> None:
    assert next_slot(T0, _at(-5), 300) == T0
    assert next_slot(T0, _at(1), 300) == _at(300)
    assert next_slot(T0, _at(600), 300) == _at(600)


def test_completion_grace_scales_with_the_cycle_and_ends_before_the_next_slot() -> None:
    for seconds in (0.5, 5, 60, 300, 3600):
        settings = Settings(_env_file=None, ARENA_CYCLE_SECONDS=seconds)
        config = SchedulerConfig.from_settings(settings, agents=("a",))
        assert timedelta(seconds=1) <= config.completion_grace <= timedelta(seconds=30)
        if seconds >= 5:
            assert config.decision_window + config.completion_grace <= timedelta(seconds=seconds)


def test_unknown_source_is_an_error() -> None:
    settings = Settings(_env_file=None, MARKET_SOURCE="coinbase")
    with pytest.raises(SourceError, match="unknown"):
        asyncio.run(create_source(settings, ManualClock(T0)))


async def test_auto_falls_back_to_the_simulator_loudly(caplog: pytest.LogCaptureFixture) -> None:
    # A port nobody listens on: the probe fails at once, as without internet.
    settings = Settings(
        _env_file=None, MARKET_SOURCE="auto", BINANCE_BASE_URL=f"http://127.0.0.1:{free_port()}"
    )
    with caplog.at_level(logging.WARNING):
        source = await create_source(settings, ManualClock(T0), probe_seconds=2)
    assert source.name == "simulator"
    assert any(
        "SIMULATOR" in r.getMessage() and "unreachable" in r.getMessage() for r in caplog.records
    )


def test_a_replay_plays_the_bars_up_to_the_next_cycle_and_at_least_one() -> None:
    minute = timedelta(minutes=1)
    assert bars_until(_at(0), _at(300), minute, remaining=1000) == 5
    assert bars_until(_at(90), _at(300), minute, remaining=1000) == 4  # part of a bar: whole
    assert bars_until(_at(0), _at(300), minute, remaining=3) == 3  # the data's last bars
    # No bar left: one is asked for, so that the source reports the data's end.
    assert bars_until(_at(0), _at(300), minute, remaining=0) == 1
