"""Historical replay: Binance public-data klines played back bar by bar.

The clock follows the data: the market "now" is the close of the last bar played. Each
tick plays one bar (one minute with 1m files); a cycle sees the candles closed by then.
Nothing comes from after "now": the mark price is the close of the last mark-price bar
closed by then, the funding rate the last one settled by then (its ``calc_time``), the
next funding time that settlement's time plus its interval. Without mark-price files
mark = last; without funding files the rate is 0 on the 00/08/16 UTC schedule.
Everything that does not depend on the cursor (five-minute and four-hour candles, float
columns, running volume sums) is computed once at load, so a cycle is a few slices.
The cursor is the replay's position across restarts, valid for the same symbols and the
same span of data.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from itertools import accumulate
from pathlib import Path

import numpy as np
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from services.common.contracts import Candle, FundingSettlement, SymbolTicker, TickPrice
from services.common.funding import FUNDING_INTERVAL_HOURS, next_funding_time
from services.market.bars import KlineRow, candle_of
from services.market.history.paths import Kind
from services.market.local_source import LocalSource
from services.market.replay_csv import (
    INTERVALS,
    FundingRow,
    ReplayDataError,
    find_files,
    load_funding,
    load_symbol,
)
from services.market.source import (
    CandleArrays,
    Checkpoint,
    JsonObject,
    MarketData,
    PositionMismatch,
    SymbolData,
)

log = logging.getLogger(__name__)

CANDLE_COUNT = 100
CONTEXT_COUNT = 60
DAY = timedelta(hours=24)
PERCENT_QUANTUM = Decimal("0.001")


@dataclass(frozen=True)
class _Candles:
    """Closed candles of one width with their close times and float columns."""

    ends: list[datetime]
    candles: list[Candle]
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray

    def until(self, now: datetime, count: int) -> tuple[tuple[Candle, ...], CandleArrays]:
        stop = bisect.bisect_right(self.ends, now)
        start = max(0, stop - count)
        return tuple(self.candles[start:stop]), CandleArrays(
            self.high[start:stop], self.low[start:stop], self.close[start:stop]
        )


def _aggregate(rows: Sequence[KlineRow], step: timedelta, width: timedelta) -> _Candles:
    per_bucket = width // step
    buckets: dict[datetime, list[KlineRow]] = {}
    for row in rows:
        offset = (row.open_time - datetime.min.replace(tzinfo=row.open_time.tzinfo)) % width
        buckets.setdefault(row.open_time - offset, []).append(row)
    candles = [
        candle_of(start, group) for start, group in buckets.items() if len(group) == per_bucket
    ]
    return _Candles(
        ends=[c.open_time + width for c in candles],
        candles=candles,
        high=np.array([float(c.high) for c in candles], dtype=np.float64),
        low=np.array([float(c.low) for c in candles], dtype=np.float64),
        close=np.array([float(c.close) for c in candles], dtype=np.float64),
    )


class _Funding:
    """Settled funding rates by time: what was known at a given moment."""

    def __init__(self, rows: Sequence[FundingRow]) -> None:
        self.rows = rows
        self.times = [r.calc_time for r in rows]

    def settled(self, after: datetime, until: datetime) -> FundingSettlement | None:
        """The settlement in (``after``, ``until``], known at ``until`` (its calc time)."""
        i = bisect.bisect_right(self.times, after)
        if i >= len(self.rows) or self.rows[i].calc_time > until:
            return None
        row = self.rows[i]
        # On the hour; the calc time carries a few milliseconds of lag.
        return FundingSettlement(
            funding_time=row.calc_time.replace(minute=0, second=0, microsecond=0), rate=row.rate
        )

    def at(self, now: datetime) -> tuple[Decimal, datetime]:
        """The last rate settled at or before ``now`` and the next funding time after it."""
        i = bisect.bisect_right(self.times, now) - 1
        if i < 0:
            return Decimal(0), next_funding_time(now)
        row = self.rows[i]
        interval = timedelta(hours=row.interval_hours or FUNDING_INTERVAL_HOURS)
        # Settlements are on the hour; calc times carry a few milliseconds of lag.
        when = row.calc_time.replace(second=0, microsecond=0) + interval
        while when <= now:  # a gap in the data: the schedule goes on
            when += interval
        return row.rate, when


class _Series:
    """One symbol's bars and everything derived from them."""

    def __init__(
        self,
        symbol: str,
        rows: list[KlineRow],
        step: timedelta,
        marks: Sequence[KlineRow] = (),
        funding: Sequence[FundingRow] = (),
    ) -> None:
        self.symbol = symbol
        self.rows = rows
        self.step = step
        self.times = [r.open_time for r in rows]
        self.marks = marks
        self.mark_times = [r.open_time for r in marks]
        self.funding = _Funding(funding) if funding else None
        self.high = np.array([float(r.high) for r in rows], dtype=np.float64)
        self.low = np.array([float(r.low) for r in rows], dtype=np.float64)
        self.volume_sums = [Decimal(0), *accumulate(r.volume for r in rows)]
        self.five = _aggregate(rows, step, timedelta(minutes=5))
        self.four_hours = _aggregate(rows, step, timedelta(hours=4))

    def last_index(self, now: datetime) -> int:
        """Index of the last bar closed at ``now``."""
        return bisect.bisect_right(self.times, now - self.step) - 1

    def mark(self, now: datetime, last: KlineRow) -> Decimal:
        """The close of the last mark-price bar closed at ``now``; else the last price."""
        i = bisect.bisect_right(self.mark_times, now - self.step) - 1
        return self.marks[i].close if i >= 0 else last.close

    def data(self, now: datetime) -> SymbolData:
        i = self.last_index(now)
        if i < 0:
            raise ReplayDataError(f"{self.symbol} has no bar before {now.isoformat()}")
        j = bisect.bisect_left(self.times, now - DAY)
        rows = self.rows
        last, first = rows[i], rows[j]
        candles, arrays = self.five.until(now, CANDLE_COUNT)
        context, arrays_4h = self.four_hours.until(now, CONTEXT_COUNT)
        rate, next_time = (
            self.funding.at(now) if self.funding else (Decimal(0), next_funding_time(now))
        )
        return SymbolData(
            ticker=SymbolTicker(
                symbol=self.symbol,
                last_price=last.close,
                mark_price=self.mark(now, last),
                price_change_pct_24h=((last.close - first.open) / first.open * 100).quantize(
                    PERCENT_QUANTUM
                ),
                volume_24h=self.volume_sums[i + 1] - self.volume_sums[j],
                high_24h=rows[j + int(np.argmax(self.high[j : i + 1]))].high,
                low_24h=rows[j + int(np.argmin(self.low[j : i + 1]))].low,
                funding_rate=rate,
                next_funding_time=next_time,
            ),
            candles=candles,
            candles_4h=context,
            arrays=arrays,
            arrays_4h=arrays_4h,
        )

    def tick(self, now: datetime) -> TickPrice:
        bar = self.rows[self.last_index(now)]
        return TickPrice(
            symbol=self.symbol,
            last_price=bar.close,
            mark_price=self.mark(now, bar),
            high=bar.high,
            low=bar.low,
            settlement=self.funding.settled(now - self.step, now) if self.funding else None,
        )


class ReplayPosition(BaseModel):
    """The bar cursor, and what identifies the data it points into."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbols: tuple[str, ...]
    first_bar: AwareDatetime
    last_bar: AwareDatetime
    bars: int
    cursor: int = Field(ge=0)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


class ReplaySource(LocalSource):
    """A :class:`~services.market.source.MarketSource` whose clock is the data's."""

    def __init__(
        self,
        series: Iterable[_Series],
        warmup_candles: int = CANDLE_COUNT,
        *,
        start: date | None = None,
        end: date | None = None,
    ) -> None:
        """``start``: the first cycle at that day's start, the bars before it warming up;
        ``end``: the last day played (included)."""
        self._series = tuple(series)
        steps = {s.step for s in self._series}
        if len(steps) != 1:
            raise ReplayDataError("every replayed symbol needs the same interval (1m or 5m)")
        self.step = steps.pop()
        begin = max(s.times[0] for s in self._series)
        last = min(s.times[-1] for s in self._series)
        if end is not None:
            last = min(last, _midnight(end + timedelta(days=1)) - self.step)
        if begin > last:
            raise ReplayDataError("the replayed symbols' files do not overlap in time")
        self._timeline = sorted({t for s in self._series for t in s.times if begin <= t <= last})
        warmup = warmup_candles * (timedelta(minutes=5) // self.step)
        if start is None:
            # Short data still replays: then the warm-up is three quarters of it.
            self._cursor = min(warmup, len(self._timeline) * 3 // 4)
        else:
            self._cursor = bisect.bisect_left(self._timeline, _midnight(start))
            if self._cursor >= len(self._timeline):
                raise ReplayDataError(f"the data ends before {start}")
            if self._cursor < warmup:
                log.warning(
                    "only %d bars before %s to warm up (%d wanted): the first cycles' "
                    "indicators see fewer candles; fetch the month before too",
                    self._cursor,
                    start,
                    warmup,
                )
        log.info(
            "replay of %s from %s to %s, %d bars",
            ", ".join(s.symbol for s in self._series),
            self.now().isoformat(),
            (self._timeline[-1] + self.step).isoformat(),
            len(self._timeline),
        )

    @classmethod
    def from_directory(
        cls,
        directory: Path,
        symbols: Iterable[str],
        *,
        start: date | None = None,
        end: date | None = None,
    ) -> ReplaySource:
        files = find_files(directory)
        series = []
        for symbol in symbols:
            interval, rows = load_symbol(files, symbol)
            if not rows:
                raise ReplayDataError(f"the {symbol} files in {directory} have no rows")
            _, marks = load_symbol(files, symbol, Kind.MARK, interval)
            funding = load_funding(files, symbol)
            series.append(_Series(symbol, rows, INTERVALS[interval], marks, funding))
        without_marks = [s.symbol for s in series if not s.marks]
        if without_marks:
            log.info("no mark-price files for %s: mark = last", ", ".join(without_marks))
        without_funding = [s.symbol for s in series if s.funding is None]
        if without_funding:
            log.info("no funding files for %s: funding rate 0", ", ".join(without_funding))
        return cls(series, start=start, end=end)

    @property
    def name(self) -> str:
        return "replay"

    def now(self) -> datetime:
        """The market's time: the close of the last bar played."""
        return self._timeline[self._cursor - 1] + self.step if self._cursor else self._timeline[0]

    def remaining(self) -> int:
        """Bars not played yet."""
        return len(self._timeline) - self._cursor

    async def snapshot_data(self, now: datetime) -> MarketData:
        at = self.now()
        return MarketData(symbols=tuple(s.data(at) for s in self._series))

    async def tick(self, now: datetime) -> tuple[TickPrice, ...]:
        if not self.remaining():
            raise ReplayDataError("the replay data is exhausted")
        self._cursor += 1
        at = self.now()
        return tuple(s.tick(at) for s in self._series)

    def _position(self) -> ReplayPosition:
        return ReplayPosition(
            symbols=tuple(s.symbol for s in self._series),
            first_bar=self._timeline[0],
            last_bar=self._timeline[-1],
            bars=len(self._timeline),
            cursor=self._cursor,
        )

    def checkpoint(self) -> Checkpoint | None:
        return None

    async def resume(self, position: JsonObject, checkpoint: JsonObject | None) -> None:
        try:
            saved = ReplayPosition.model_validate(position)
        except ValidationError as exc:
            raise PositionMismatch(f"the saved replay position is unreadable: {exc}") from exc
        here = self._position()
        if saved.model_copy(update={"cursor": here.cursor}) != here:
            raise PositionMismatch(
                f"the saved replay is of {', '.join(saved.symbols)} from "
                f"{saved.first_bar.isoformat()} to {saved.last_bar.isoformat()} "
                f"({saved.bars} bars), not this data"
            )
        if saved.cursor > here.bars:
            raise PositionMismatch(f"the saved bar {saved.cursor} is past the data's end")
        self._cursor = saved.cursor
        log.info("replay resumed at %s, %d bars left", self.now().isoformat(), self.remaining())
