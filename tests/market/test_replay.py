"""Replay of Binance public-data CSVs: parsing, reproducible snapshots, the data-paced clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from bench.replay_data import write_month
from services.common import channels
from services.common.contracts import MarketSnapshot, Prices, PricesQuery
from services.common.settings import Settings
from services.market.replay import ReplaySource
from services.market.replay_csv import ReplayDataError, find_files, load_symbol, parse_rows
from services.market.selection import create_source
from services.market.service import build
from services.market.snapshot import build_snapshot
from services.market.source import PositionMismatch, SourceError
from tests.market.observer import observing
from tests.support import eventually, running

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "replay"
SYMBOLS = ("BTCUSDT", "ETHUSDT")
DAY_START = datetime(2024, 3, 1, tzinfo=UTC)
WALL = datetime(2030, 1, 1, tzinfo=UTC)


def test_rows_with_and_without_header_and_microsecond_stamps() -> None:
    with_header = [
        "open_time,open,high,low,close,volume,close_time,quote_volume,count,a,b,ignore",
        "1709251200000,1.5,2,1,1.75,10,1709251259999,0,1,0,0,0",
    ]
    assert parse_rows(with_header, "x")[0].close == Decimal("1.75")
    micro = parse_rows(["1709251200000000,1,2,1,1.5,10,0"], "x")
    assert micro[0].open_time == DAY_START
    with pytest.raises(ReplayDataError, match="x:2: open time 'oops'"):
        parse_rows(["1709251200000,1,2,1,1.5,10", "oops,1,2,1,1,1"], "x")


def test_five_minute_files_are_used_when_there_is_no_one_minute_file(tmp_path: Path) -> None:
    (tmp_path / "SOLUSDT-5m-2024-03.csv").write_text(
        "1709251200000,150,151,149,150.5,10,0\n1709251500000,150.5,152,150,151,12,0\n"
    )
    (tmp_path / "README.txt").write_text("not data")
    interval, rows = load_symbol(find_files(tmp_path), "SOLUSDT")
    assert interval == "5m" and [r.close for r in rows] == [Decimal("150.5"), Decimal(151)]
    with pytest.raises(ReplayDataError, match="no BTCUSDT-1m"):
        load_symbol(find_files(tmp_path), "BTCUSDT")


async def _snapshots(cycles: int) -> list[MarketSnapshot]:
    source = ReplaySource.from_directory(FIXTURES, SYMBOLS)
    result = []
    for k in range(cycles):
        data = await source.snapshot_data(WALL)
        result.append(
            build_snapshot(
                cycle_id=f"c{k}",
                taken_at=source.now(),
                decision_deadline=WALL,
                source=source.name,
                data=data,
            )
        )
        for _ in range(5):
            await source.tick(WALL)
    return result


async def test_replay_snapshots_follow_the_csv_and_are_the_same_on_every_run() -> None:
    first, again = await _snapshots(4), await _snapshots(4)
    assert first == again
    snapshot = first[0]
    # 100 five-minute candles of warm-up: the first cycle is at 08:20 on the data's clock.
    assert snapshot.taken_at == DAY_START + timedelta(minutes=500)
    assert [s.taken_at - snapshot.taken_at for s in first] == [
        timedelta(minutes=5 * k) for k in range(4)
    ]
    btc = snapshot.symbol("BTCUSDT")
    assert btc is not None and len(btc.candles) == 100
    rows = load_symbol(find_files(FIXTURES), "BTCUSDT")[1]
    last_five = rows[495:500]
    candle = btc.candles[-1]
    assert candle.open_time == DAY_START + timedelta(minutes=495)
    assert (candle.open, candle.close) == (last_five[0].open, last_five[-1].close)
    assert candle.high == max(r.high for r in last_five)
    assert candle.volume == sum((r.volume for r in last_five), Decimal(0))
    assert btc.last_price == rows[499].close
    assert btc.high_24h == max(r.high for r in rows[:500])
    assert btc.indicators.ema_50 is not None and btc.indicators.rsi_14 is not None


async def test_replay_source_errors_are_start_up_errors(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, MARKET_SOURCE=f"replay:{tmp_path / 'none'}")
    with pytest.raises(SourceError, match="does not exist"):
        await create_source(settings, _Clock())
    settings = Settings(_env_file=None, MARKET_SOURCE=f"replay:{FIXTURES}")
    with pytest.raises(SourceError, match="no SOLUSDT-1m"):
        await create_source(settings, _Clock())


class _Clock:
    def now(self) -> datetime:
        return WALL

    def monotonic(self) -> float:
        return 0.0


async def test_the_service_replays_back_to_back_until_the_data_ends(
    make_settings: Callable[..., Settings], nats_url: str
) -> None:
    settings = make_settings(
        MARKET_SOURCE=f"replay:{FIXTURES}",
        ARENA_SYMBOLS="BTCUSDT,ETHUSDT",
        ARENA_CYCLE_SECONDS=300,
        ARENA_DECISION_SECONDS=5,
    )
    async with (
        observing(nats_url, auto_complete=True) as obs,
        running("market", build, settings),
    ):
        # 700 bars: 500 of warm-up, then 200 played as ticks, 5 per cycle: 41 cycles.
        async def finished() -> bool:
            status = await obs.status()
            return status.cycles_completed == 41 and status.next_run_at is None

        await eventually(finished, timeout=30, what="the whole replay")
        status = await obs.status()
        assert status.source == "replay" and status.cycles_failed == 0
        await eventually(lambda: len(obs.snapshots) == 41, what="every snapshot")
        snapshots = [s for _, s in obs.snapshots]
        assert all(s.source == "replay" for s in snapshots)
        assert snapshots[-1].taken_at == DAY_START + timedelta(minutes=700)
        # Everything follows the data: the deadline, the ids, the ticks' times.
        first = snapshots[0]
        assert first.data_time and first.decision_deadline - first.taken_at == timedelta(
            seconds=settings.decision_window.total_seconds()
        )
        assert first.cycle_id == f"{first.taken_at:%Y%m%dT%H%M%SZ}-000001"
        await eventually(lambda: len(obs.ticks) == 200, what="one tick per bar")
        # A cycle period's bars are published together: still one per bar, in order.
        assert [t.at for t in obs.ticks] == [
            DAY_START + timedelta(minutes=501 + n) for n in range(200)
        ]
        assert [t.tick_id.rsplit("-", 1)[1] for t in obs.ticks] == [str(n) for n in range(1, 201)]
        assert all(t.data_time for t in obs.ticks)
        # Each cycle after the first follows its period's bars in the stream, its snapshot
        # after its start: one lot, in order. Only this test's completion of the cycle,
        # published the moment it sees the start, can come between those two.
        started_at = [s for s, _ in obs.started]
        snapshot_at = [s for s, _ in obs.snapshots]
        for k in range(1, 41):
            bars = obs.tick_sequences[5 * (k - 1) : 5 * k]
            assert bars == list(range(started_at[k] - 5, started_at[k]))
            assert started_at[k] < snapshot_at[k] <= started_at[k] + 2
        started = [m for _, m in obs.started]
        assert all(m.data_time and m.decision_deadline > m.started_at for m in started)
        assert started[1].started_at == DAY_START + timedelta(minutes=505)
        prices = await obs.bus.request(channels.MARKET_QUERY_PRICES.subject, PricesQuery(), Prices)
        assert prices.source == "replay" and prices.at == DAY_START + timedelta(minutes=700)


async def test_a_replay_resumes_only_a_position_in_the_same_data() -> None:
    source = ReplaySource.from_directory(FIXTURES, SYMBOLS)
    for _ in range(3):
        await source.tick(WALL)
    position = source.position()
    again = ReplaySource.from_directory(FIXTURES, SYMBOLS)
    await again.resume(position, None)
    assert again.now() == source.now() == DAY_START + timedelta(minutes=503)
    assert await again.tick(WALL) == await source.tick(WALL)

    other = ReplaySource.from_directory(FIXTURES, ("BTCUSDT",))
    with pytest.raises(PositionMismatch, match="not this data"):
        await other.resume(position, None)
    with pytest.raises(PositionMismatch, match="past the data's end"):
        await again.resume({**position, "cursor": 10_000}, None)
    with pytest.raises(PositionMismatch, match="unreadable"):
        await again.resume({"cursor": -1}, None)


def test_a_replay_between_two_days_warms_up_on_the_bars_before(tmp_path: Path) -> None:
    write_month(tmp_path, start=datetime(2025, 1, 1, tzinfo=UTC), days=3, symbols=SYMBOLS)
    source = ReplaySource.from_directory(
        tmp_path, SYMBOLS, start=date(2025, 1, 2), end=date(2025, 1, 2)
    )
    # The first cycle at the start of the 2nd, the day before warming up; the 2nd played whole.
    assert source.now() == datetime(2025, 1, 2, tzinfo=UTC)
    assert source.remaining() == 24 * 60
    with pytest.raises(ReplayDataError, match="the data ends before 2025-01-05"):
        ReplaySource.from_directory(tmp_path, SYMBOLS, start=date(2025, 1, 5))
