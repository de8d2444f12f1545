"""Binance public-data CSVs: klines, mark-price klines and funding rates, plain or zipped.

Kline files are ``SYMBOL-1m-YYYY-MM.csv`` (``-5m-``, daily ``-YYYY-MM-DD``), or the same
name ``.zip`` as data.binance.vision serves it (read in place, one CSV inside). Rows are
``open_time, open, high, low, close, volume, close_time, ...`` with or without a header
row; times are epoch milliseconds (microseconds in some newer files). Mark-price klines
have the same names and columns: a file is one when a directory on its path is named
``markPriceKlines`` (the layout ``history fetch`` writes). Funding files are
``SYMBOL-fundingRate-YYYY-MM.csv`` or ``.zip``: ``calc_time, funding_interval_hours,
last_funding_rate``, header or not. Parsing is pure: it takes lines, not paths.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TypeVar

from services.market.bars import KlineRow
from services.market.history.paths import Kind

FILE_NAME = re.compile(
    r"^(?P<symbol>[A-Z0-9]+)-(?P<interval>1m|5m)-(?P<period>\d{4}-\d{2}(?:-\d{2})?)\.(?:csv|zip)$"
)
FUNDING_NAME = re.compile(r"^(?P<symbol>[A-Z0-9]+)-fundingRate-\d{4}-\d{2}\.(?:csv|zip)$")
# Binance's other kline-shaped kinds: same file names, not prices this replay trades.
OTHER_KINDS = frozenset({"indexPriceKlines", "premiumIndexKlines"})
R = TypeVar("R")

INTERVALS = {"1m": timedelta(minutes=1), "5m": timedelta(minutes=5)}
MICROSECONDS_THRESHOLD = 10**14


class ReplayDataError(ValueError):
    """A replay directory or file that cannot be used, with the file and line."""


@dataclass(frozen=True)
class FundingRow:
    calc_time: datetime
    interval_hours: int | None
    rate: Decimal


@dataclass(frozen=True)
class KlineFile:
    path: Path
    symbol: str
    interval: str  # "" for funding files
    kind: Kind = Kind.KLINES


def _time(stamp: str) -> datetime:
    value = int(stamp)
    seconds = value / 1_000_000 if value >= MICROSECONDS_THRESHOLD else value / 1000
    return datetime.fromtimestamp(seconds, tz=UTC)


def _is_header(fields: list[str], number: int, where: str) -> bool:
    """True for a first row that is a header; raises on any other non-numeric time."""
    if fields[0].isdigit():
        return False
    if number == 1:
        return True
    raise ReplayDataError(f"{where}:{number}: open time {fields[0]!r} is not a number")


def _parse(
    lines: Iterable[str],
    where: str,
    row: Callable[[list[str]], R],
    *,
    columns: int,
    too_few: str,
    bad: str,
) -> list[R]:
    """``row`` of each data line's fields (blank lines and a header skipped); an error
    names the line: ``too_few`` under ``columns`` fields, ``bad`` a field ``row`` rejects."""
    rows = []
    for number, line in enumerate(lines, start=1):
        fields = line.strip().split(",")
        if not fields[0] or _is_header(fields, number, where):
            continue
        if len(fields) < columns:
            raise ReplayDataError(f"{where}:{number}: {too_few}")
        try:
            rows.append(row(fields))
        except (InvalidOperation, ValueError) as exc:
            raise ReplayDataError(f"{where}:{number}: {bad}") from exc
    return rows


def _kline(fields: list[str]) -> KlineRow:
    return KlineRow(
        open_time=_time(fields[0]),
        open=Decimal(fields[1]),
        high=Decimal(fields[2]),
        low=Decimal(fields[3]),
        close=Decimal(fields[4]),
        volume=Decimal(fields[5]),
    )


def _funding(fields: list[str]) -> FundingRow:
    return FundingRow(
        calc_time=_time(fields[0]),
        interval_hours=int(fields[1]) if len(fields) > 2 else None,
        rate=Decimal(fields[-1] if len(fields) < 4 else fields[2]),
    )


def parse_rows(lines: Iterable[str], where: str) -> list[KlineRow]:
    too_few = "expected at least 6 columns"
    return _parse(lines, where, _kline, columns=6, too_few=too_few, bad="a price is not a number")


def parse_funding(lines: Iterable[str], where: str) -> list[FundingRow]:
    """``calc_time, funding_interval_hours, last_funding_rate`` (or ``calc_time, rate``)."""
    too_few = "expected a time and a funding rate"
    return _parse(lines, where, _funding, columns=2, too_few=too_few, bad="not a funding row")


@contextmanager
def _lines(path: Path) -> Iterator[Iterable[str]]:
    if path.suffix != ".zip":
        with path.open(encoding="utf-8") as lines:
            yield lines
        return
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise ReplayDataError(f"{path} is not a zip holding one CSV file") from exc
    with archive:
        members = [n for n in archive.namelist() if n.endswith(".csv")]
        if len(members) != 1:
            raise ReplayDataError(f"{path} is not a zip holding one CSV file")
        with archive.open(members[0]) as raw:
            yield io.TextIOWrapper(raw, encoding="utf-8")


def find_files(directory: Path) -> list[KlineFile]:
    if not directory.is_dir():
        raise ReplayDataError(f"replay directory {directory} does not exist")
    found = []
    for path in sorted(p for p in directory.rglob("*") if p.suffix in {".csv", ".zip"}):
        parts = set(path.relative_to(directory).parts[:-1])
        if match := FUNDING_NAME.match(path.name):
            found.append(KlineFile(path, match["symbol"], "", Kind.FUNDING))
        elif (match := FILE_NAME.match(path.name)) and not parts & OTHER_KINDS:
            kind = Kind.MARK if Kind.MARK.value in parts else Kind.KLINES
            found.append(KlineFile(path, match["symbol"], match["interval"], kind))
    return found


def load_symbol(
    files: list[KlineFile], symbol: str, kind: Kind = Kind.KLINES, interval: str | None = None
) -> tuple[str, list[KlineRow]]:
    """The finest interval available for ``symbol`` (or ``interval``) and its rows, sorted,
    duplicates dropped; ``kind`` chooses klines or mark-price klines."""
    mine = [f for f in files if f.symbol == symbol and f.kind is kind]
    if not mine and kind is Kind.KLINES:
        raise ReplayDataError(f"no {symbol}-1m-*.csv or {symbol}-5m-*.csv file in the replay data")
    if interval is None:
        interval = "1m" if any(f.interval == "1m" for f in mine) else "5m"
    by_time: dict[datetime, KlineRow] = {}
    for f in mine:
        if f.interval == interval:
            with _lines(f.path) as lines:
                for row in parse_rows(lines, str(f.path)):
                    by_time[row.open_time] = row
    return interval, [by_time[t] for t in sorted(by_time)]


def load_funding(files: list[KlineFile], symbol: str) -> list[FundingRow]:
    """``symbol``'s funding rows, by time, duplicates dropped."""
    by_time: dict[datetime, FundingRow] = {}
    for f in files:
        if f.symbol == symbol and f.kind is Kind.FUNDING:
            with _lines(f.path) as lines:
                for row in parse_funding(lines, str(f.path)):
                    by_time[row.calc_time] = row
    return [by_time[t] for t in sorted(by_time)]
