"""Replay of fetched history: zipped files, the real mark price and funding, no look-ahead."""

from __future__ import annotations

import io
import logging
import zipfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from services.common.contracts import Candle, TickPrice
from services.market.history.paths import Kind, RemoteFile
from services.market.replay import ReplaySource
from services.market.replay_csv import FundingRow, ReplayDataError, parse_funding
from services.market.snapshot import build_snapshot
from services.market.source import SymbolData

START = datetime(2025, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
DAYS = 2
WALL = datetime(2030, 1, 1, tzinfo=UTC)
CALC_LAG = timedelta(milliseconds=5)  # real calc times are a few ms after the hour
# symbol -> (price base, funding interval hours). Each value encodes the minute it is of:
# bar m closes at base + m + 0.5, its mark at base + m + 0.6, funding k is (k + 1) ppm.
SYMBOLS = {
    "BTCUSDT": (Decimal(10_000), 8),
    "ETHUSDT": (Decimal(20_000), 8),
    "SOLUSDT": (Decimal(30_000), 4),
}
MARK_GAP = range(1000, 1060)  # SOLUSDT's mark file lacks these minutes


def _millis(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _kline(at: datetime, close: Decimal, volume: int) -> str:
    return (
        f"{_millis(at)},{close - Decimal('0.5')},{close + Decimal('0.25')},"
        f"{close - Decimal('0.75')},{close},{volume},{_millis(at + MINUTE) - 1},0,1,0,0,0"
    )


def _write(directory: Path, remote: RemoteFile, lines: list[str], *, zipped: bool) -> None:
    path = directory / remote.local
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines) + "\n"
    if not zipped:
        path.with_suffix(".csv").write_text(text)
        return
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(path.with_suffix(".csv").name, text)
    path.write_bytes(buffer.getvalue())


KLINE_HEADER = "open_time,open,high,low,close,volume,close_time,quote_volume,count,a,b,ignore"


def _dataset(directory: Path) -> None:
    """Two days of three symbols in the layout ``history fetch`` writes, some plain CSV."""
    for n, (symbol, (base, hours)) in enumerate(SYMBOLS.items()):
        for day in range(DAYS):
            first = day * 1440
            minutes = range(first, first + 1440)
            period = f"{START + timedelta(days=day):%Y-%m-%d}"
            bars = [_kline(START + m * MINUTE, base + m + Decimal("0.5"), m + 1) for m in minutes]
            marks = [
                _kline(START + m * MINUTE, base + m + Decimal("0.6"), 0)
                for m in minutes
                if symbol != "SOLUSDT" or m not in MARK_GAP
            ]
            header = [KLINE_HEADER] if n != 1 else []
            _write(directory, RemoteFile(symbol, Kind.KLINES, period), header + bars, zipped=n != 1)
            _write(directory, RemoteFile(symbol, Kind.MARK, period), header + marks, zipped=True)
        settlements = DAYS * 24 // hours + 1
        funding = [
            f"{_millis(START + timedelta(hours=hours * k) + CALC_LAG)},{hours},{_rate(k)}"
            for k in range(settlements)
        ]
        header = ["calc_time,funding_interval_hours,last_funding_rate"] if n != 1 else []
        _write(
            directory, RemoteFile(symbol, Kind.FUNDING, "2025-01"), header + funding, zipped=n != 2
        )


def _rate(settlement: int) -> Decimal:
    return Decimal(settlement + 1) / 10**6


def _minute(value: Decimal, base: Decimal, offset: str) -> int:
    """The minute a generated value belongs to."""
    minute = value - base - Decimal(offset)
    assert minute == int(minute), f"{value} is not a generated value"
    return int(minute)


def _check_candles(
    candles: tuple[Candle, ...], width: timedelta, base: Decimal, now: datetime
) -> None:
    for candle in candles:
        assert candle.open_time + width <= now, f"a candle closing after {now}"
        last = _minute(candle.close, base, "0.5")
        assert START + (last + 1) * MINUTE == candle.open_time + width
        assert _minute(candle.high, base, "0.75") == last  # prices rise: the last bar's high


def _check_symbol(data: SymbolData, now: datetime) -> None:
    base, hours = SYMBOLS[data.symbol]
    ticker = data.ticker
    last = (now - START) // MINUTE - 1  # the last bar closed at ``now``
    assert _minute(ticker.last_price, base, "0.5") == last
    assert _minute(ticker.high_24h, base, "0.75") == last
    assert _minute(ticker.low_24h, base, "-0.25") == max(0, last - 1439)
    window = range(max(0, last - 1439), last + 1)
    assert ticker.volume_24h == sum(m + 1 for m in window)
    mark = last if data.symbol != "SOLUSDT" or last not in MARK_GAP else MARK_GAP.start - 1
    assert _minute(ticker.mark_price, base, "0.6") == mark
    settled = max(k for k in range(100) if START + timedelta(hours=hours * k) + CALC_LAG <= now)
    assert ticker.funding_rate == _rate(settled)
    # Strictly after ``now``: at a settlement's own minute (5 ms before its calc time) the
    # rate is still the previous one and the next time is the one after.
    schedule = (START + timedelta(hours=hours * k) for k in range(100))
    assert ticker.next_funding_time == next(t for t in schedule if t > now)
    _check_candles(data.candles, timedelta(minutes=5), base, now)
    _check_candles(data.candles_4h, timedelta(hours=4), base, now)
    assert data.arrays is not None and data.arrays_4h is not None
    for arrays in (data.arrays, data.arrays_4h):
        if len(arrays.close):
            assert float(arrays.close.max()) <= float(base + last + Decimal("0.5"))
            assert float(arrays.high.max()) <= float(base + last + Decimal("0.75"))
    assert len(data.candles) == len(data.arrays.close) and data.candles[-1].open_time == (
        now - timedelta(minutes=5) - (now - START) % timedelta(minutes=5)
    )


def _check_tick(price: TickPrice, now: datetime) -> None:
    base = SYMBOLS[price.symbol][0]
    last = (now - START) // MINUTE - 1
    assert _minute(price.last_price, base, "0.5") == last
    assert _minute(price.high, base, "0.75") == last
    assert _minute(price.low, base, "-0.25") == last
    mark = last if price.symbol != "SOLUSDT" or last not in MARK_GAP else MARK_GAP.start - 1
    assert _minute(price.mark_price, base, "0.6") == mark
    # A settlement rides the tick of the bar its calc time falls in: not before, not after.
    hours = SYMBOLS[price.symbol][1]
    due = [
        k for k in range(100) if now - MINUTE < START + timedelta(hours=hours * k) + CALC_LAG <= now
    ]
    if not due:
        assert price.settlement is None, f"a settlement at {now} where the data has none"
    else:
        (k,) = due
        assert price.settlement is not None, f"the settlement of {now} is missing"
        assert price.settlement.funding_time == START + timedelta(hours=hours * k)
        assert price.settlement.rate == _rate(k)


async def test_no_snapshot_or_tick_value_comes_from_after_its_time(tmp_path: Path) -> None:
    _dataset(tmp_path)
    source = ReplaySource.from_directory(tmp_path, tuple(SYMBOLS))
    snapshots = ticks = 0
    funding_boundaries = 0
    while source.remaining():
        now = source.now()
        data = await source.snapshot_data(WALL)
        snapshot = build_snapshot(
            cycle_id=f"c{snapshots}",
            taken_at=now,
            decision_deadline=WALL,
            source="replay",
            data=data,
        )
        for symbol_data, published in zip(data.symbols, snapshot.symbols, strict=True):
            _check_symbol(symbol_data, now)
            assert (published.mark_price, published.funding_rate, published.next_funding_time) == (
                symbol_data.ticker.mark_price,
                symbol_data.ticker.funding_rate,
                symbol_data.ticker.next_funding_time,
            )
        funding_boundaries += now.minute == 0 and now.hour % 4 == 0
        snapshots += 1
        for _ in range(min(5, source.remaining())):
            prices = await source.tick(WALL)
            for price in prices:
                _check_tick(price, source.now())
            ticks += 1
    assert ticks == DAYS * 1440 - 500 and snapshots == ticks // 5
    # Snapshots taken exactly at a settlement (its calc time is 5 ms later) were checked.
    assert funding_boundaries >= 8


async def test_funding_and_mark_come_from_the_files(tmp_path: Path) -> None:
    _dataset(tmp_path)
    source = ReplaySource.from_directory(tmp_path, ("BTCUSDT",))
    while source.now() < START + timedelta(hours=16, minutes=5):
        await source.tick(WALL)
    (btc,) = (await source.snapshot_data(WALL)).symbols
    # Settled at 16:00 (the third of the day): 3 ppm, the next at midnight.
    assert btc.ticker.funding_rate == Decimal("0.000003")
    assert btc.ticker.next_funding_time == START + timedelta(days=1)
    assert btc.ticker.mark_price == btc.ticker.last_price + Decimal("0.1")


async def test_without_mark_and_funding_files_mark_is_last_and_funding_zero(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _dataset(tmp_path)
    for path in [*tmp_path.rglob("markPriceKlines/*/*/*"), *tmp_path.rglob("fundingRate/*/*")]:
        path.unlink()
    with caplog.at_level(logging.INFO, logger="services.market.replay"):
        source = ReplaySource.from_directory(tmp_path, ("BTCUSDT", "ETHUSDT"))
        for _ in range(7):
            await source.tick(WALL)
        (btc, _eth) = (await source.snapshot_data(WALL)).symbols
    assert btc.ticker.mark_price == btc.ticker.last_price and btc.ticker.funding_rate == 0
    assert btc.ticker.next_funding_time == START + timedelta(hours=16)
    said = [r.getMessage() for r in caplog.records]
    assert said.count("no mark-price files for BTCUSDT, ETHUSDT: mark = last") == 1
    assert said.count("no funding files for BTCUSDT, ETHUSDT: funding rate 0") == 1


def test_funding_rows_with_or_without_header() -> None:
    rows = parse_funding(
        ["calc_time,funding_interval_hours,last_funding_rate", "1735689600005,8,-0.00012"], "x"
    )
    assert rows == [FundingRow(START + timedelta(milliseconds=5), 8, Decimal("-0.00012"))]
    assert parse_funding(["1735689600000,0.0001"], "x")[0].rate == Decimal("0.0001")
    with pytest.raises(ReplayDataError, match="x:2: not a funding row"):
        parse_funding(["1735689600000,8,0.0001", "1735718400000,8,abc"], "x")


def test_a_damaged_zip_is_a_replay_data_error(tmp_path: Path) -> None:
    path = tmp_path / RemoteFile("BTCUSDT", Kind.KLINES, "2025-01").local
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a zip")
    with pytest.raises(ReplayDataError, match="not a zip"):
        ReplaySource.from_directory(tmp_path, ("BTCUSDT",))
    # A bad row inside a good zip is reported as such, with the file and line.
    _write(
        tmp_path, RemoteFile("BTCUSDT", Kind.KLINES, "2025-01"), [KLINE_HEADER, "x"], zipped=True
    )
    with pytest.raises(ReplayDataError, match=r"BTCUSDT-1m-2025-01.zip:2: open time 'x'"):
        ReplaySource.from_directory(tmp_path, ("BTCUSDT",))
