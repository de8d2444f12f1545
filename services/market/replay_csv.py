"""Binance public-data kline CSVs (``SYMBOL-1m-YYYY-MM.csv``, ``-5m-``, daily or monthly).

Rows are ``open_time, open, high, low, close, volume, close_time, ...`` with or without a
header row; times are epoch milliseconds (microseconds in some newer files). Parsing is
pure: it takes lines, not paths.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

FILE_NAME = re.compile(
    r"^(?P<symbol>[A-Z0-9]+)-(?P<interval>1m|5m)-(?P<period>\d{4}-\d{2}(?:-\d{2})?)\.csv$"
)
INTERVALS = {"1m": timedelta(minutes=1), "5m": timedelta(minutes=5)}
MICROSECONDS_THRESHOLD = 10**14


class ReplayDataError(ValueError):
    """A replay directory or file that cannot be used, with the file and line."""


@dataclass(frozen=True)
class KlineRow:
    open_time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


@dataclass(frozen=True)
class KlineFile:
    path: Path
    symbol: str
    interval: str


def parse_rows(lines: Iterable[str], where: str) -> list[KlineRow]:
    rows = []
    for number, line in enumerate(lines, start=1):
        fields = line.strip().split(",")
        if not fields[0]:
            continue
        if not fields[0].isdigit():
            if number == 1:
                continue  # the header row of newer files
            raise ReplayDataError(f"{where}:{number}: open time {fields[0]!r} is not a number")
        if len(fields) < 6:
            raise ReplayDataError(f"{where}:{number}: expected at least 6 columns")
        stamp = int(fields[0])
        seconds = stamp / 1_000_000 if stamp >= MICROSECONDS_THRESHOLD else stamp / 1000
        try:
            rows.append(
                KlineRow(
                    open_time=datetime.fromtimestamp(seconds, tz=UTC),
                    open=Decimal(fields[1]),
                    high=Decimal(fields[2]),
                    low=Decimal(fields[3]),
                    close=Decimal(fields[4]),
                    volume=Decimal(fields[5]),
                )
            )
        except InvalidOperation as exc:
            raise ReplayDataError(f"{where}:{number}: a price is not a number") from exc
    return rows


def find_files(directory: Path) -> list[KlineFile]:
    if not directory.is_dir():
        raise ReplayDataError(f"replay directory {directory} does not exist")
    found = []
    for path in sorted(directory.rglob("*.csv")):
        match = FILE_NAME.match(path.name)
        if match:
            found.append(KlineFile(path, match["symbol"], match["interval"]))
    return found


def load_symbol(files: list[KlineFile], symbol: str) -> tuple[str, list[KlineRow]]:
    """The finest interval available for ``symbol`` and its rows, sorted, duplicates dropped."""
    mine = [f for f in files if f.symbol == symbol]
    if not mine:
        raise ReplayDataError(f"no {symbol}-1m-*.csv or {symbol}-5m-*.csv file in the replay data")
    interval = "1m" if any(f.interval == "1m" for f in mine) else "5m"
    by_time: dict[datetime, KlineRow] = {}
    for f in mine:
        if f.interval == interval:
            with f.path.open(encoding="utf-8") as lines:
                for row in parse_rows(lines, str(f.path)):
                    by_time[row.open_time] = row
    return interval, [by_time[t] for t in sorted(by_time)]
