"""Which files of data.binance.vision a span of history needs, and where they go locally.

Pure: dates in, remote paths out. Klines and mark-price klines come as one file per month,
or, for a month not published as a whole yet (the current one) or only partly wanted, one
file per day; funding rates come per month only. The local copy mirrors the remote path
below ``data/``, so a file's kind is a directory on its path (``klines``,
``markPriceKlines``, ``fundingRate``), which is what the replay reads.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from pathlib import PurePosixPath

INTERVAL = "1m"
MONTH = re.compile(r"^(\d{4})-(\d{2})$")
DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


class Kind(StrEnum):
    KLINES = "klines"
    MARK = "markPriceKlines"
    FUNDING = "fundingRate"


@dataclass(frozen=True)
class RemoteFile:
    """One zip of the public data, named by its path below the base URL."""

    symbol: str
    kind: Kind
    period: str  # YYYY-MM or YYYY-MM-DD

    @property
    def daily(self) -> bool:
        return len(self.period) == len("YYYY-MM-DD")

    @property
    def path(self) -> PurePosixPath:
        """The remote path, ``data/futures/um/...``; the local one drops ``data/``."""
        cadence = "daily" if self.daily else "monthly"
        base = PurePosixPath("data/futures/um", cadence, self.kind.value, self.symbol)
        if self.kind is Kind.FUNDING:
            return base / f"{self.symbol}-fundingRate-{self.period}.zip"
        return base / INTERVAL / f"{self.symbol}-{INTERVAL}-{self.period}.zip"

    @property
    def local(self) -> PurePosixPath:
        return self.path.relative_to("data")

    def __str__(self) -> str:
        return f"{self.symbol} {self.kind.value} {self.period}"


@dataclass(frozen=True)
class Wanted:
    """A month of one kind: the monthly file, else (or when only part is wanted) the days."""

    monthly: RemoteFile | None
    daily: tuple[RemoteFile, ...]


def parse_bound(text: str, *, end: bool) -> date:
    """``YYYY-MM`` (its first day, or its last when ``end``) or ``YYYY-MM-DD``."""
    if match := DAY.match(text):
        return date(int(match[1]), int(match[2]), int(match[3]))
    if match := MONTH.match(text):
        year, month = int(match[1]), int(match[2])
        return date(year, month, calendar.monthrange(year, month)[1] if end else 1)
    raise ValueError(f"{text!r} is neither YYYY-MM nor YYYY-MM-DD")


def months(start: date, end: date) -> list[date]:
    """The first day of every month from ``start``'s to ``end``'s."""
    found, month = [], start.replace(day=1)
    while month <= end:
        found.append(month)
        month = (month + timedelta(days=32)).replace(day=1)
    return found


def plan(symbols: tuple[str, ...], start: date, end: date) -> list[Wanted]:
    """Every file the span needs, symbol by symbol, month by month, kind by kind."""
    if start > end:
        raise ValueError(f"the span starts ({start}) after it ends ({end})")
    wanted = []
    for symbol in symbols:
        for month in months(start, end):
            last = month.replace(day=calendar.monthrange(month.year, month.month)[1])
            first_day, last_day = max(month, start), min(last, end)
            whole = first_day == month and last_day == last
            days = [first_day + timedelta(days=n) for n in range((last_day - first_day).days + 1)]
            period = f"{month:%Y-%m}"
            for kind in (Kind.KLINES, Kind.MARK):
                wanted.append(
                    Wanted(
                        monthly=RemoteFile(symbol, kind, period) if whole else None,
                        daily=tuple(RemoteFile(symbol, kind, f"{d:%Y-%m-%d}") for d in days),
                    )
                )
            wanted.append(Wanted(monthly=RemoteFile(symbol, Kind.FUNDING, period), daily=()))
    return wanted


def parse_checksum(text: str) -> str:
    """The sha256 hex of a ``.CHECKSUM`` file (``<hex>  <file name>``)."""
    fields = text.split(maxsplit=1)
    digest = fields[0].lower() if fields else ""
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise ValueError("not a sha256 checksum file")
    return digest
