"""The seasons a gateway serves: the subfolders of ``ARENA_SEASONS_DIR`` holding a
``report.json`` (docs/seasons.md), each known by its folder's name.

Names are checked before any path is built from them, and every file served must lie,
symlinks resolved, inside the seasons folder. A report is parsed once per change of its
modification time and size, so listing a folder of large reports costs a few ``stat``s
per season (its report, its page, its charts).
The methods touch the disk: the routes call them off the event loop.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import Field

from services.gateway.responses import View

log = logging.getLogger(__name__)

REPORT_FILE = "report.json"
PAGE_FILE = "report.html"
CHARTS_DIR = "charts"
NAME = re.compile(r"[A-Za-z0-9._-]+")
NAME_RULE = "letters, digits, '.', '_' and '-', not starting with '.'"


class SeasonSummary(View):
    """One season of ``GET /seasons``: what its report says about itself."""

    id: str = Field(description="The season's folder name.")
    runs: int | None
    cycles: int | None
    season: dict[str, Any] | None = Field(
        description="The season's description (summary.json's `season`), as the report has it."
    )
    agents: tuple[str, ...]
    created: datetime = Field(description="When report.json was last written (UTC).")
    report_html: bool = Field(
        default=False, description="Whether report.html is there (/seasons/{id}/report.html)."
    )
    charts: tuple[str, ...] = Field(
        default=(), description="The charts there, by name (/seasons/{id}/charts/{name}.png)."
    )


class InvalidName(ValueError):
    """A season or chart name that is not one (it could name a path elsewhere)."""


class SeasonFileMissing(LookupError):
    """No such season, or the season has no such file."""


def valid_name(name: str) -> bool:
    return NAME.fullmatch(name) is not None and not name.startswith(".")


def _checked(name: str, what: str) -> str:
    if not valid_name(name):
        raise InvalidName(f"invalid {what} {name!r}: a {what} is {NAME_RULE}")
    return name


@dataclass(frozen=True)
class _Parsed:
    stamp: tuple[int, int]  # mtime_ns, size
    summary: SeasonSummary | None  # None: the file is not a report


def _summary(season_id: str, report: Path, mtime_ns: int) -> SeasonSummary | None:
    try:
        data = json.loads(report.read_bytes())
        agents = data.get("agents") or {}
        season = data.get("season")
        return SeasonSummary(
            id=season_id,
            runs=data.get("runs"),
            cycles=data.get("cycles"),
            season=season if isinstance(season, dict) else None,
            agents=tuple(str(a) for a in agents),
            created=datetime.fromtimestamp(mtime_ns / 1e9, UTC),
        )
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        log.warning("season %s: %s is not a readable report: %s", season_id, report, exc)
        return None


class SeasonShelf:
    """The seasons under ``root`` (none when ``root`` is ``None``)."""

    def __init__(self, root: Path | None) -> None:
        self._root = root
        self._parsed: dict[str, _Parsed] = {}
        self._lock = threading.Lock()

    @property
    def root(self) -> Path | None:
        return self._root

    def _base(self) -> Path | None:
        if self._root is None:
            return None
        base = self._root.resolve()
        return base if base.is_dir() else None

    def _inside(self, base: Path, *parts: str) -> Path | None:
        """``base/parts`` if it is a regular file whose real path is under ``base``."""
        try:
            real = base.joinpath(*parts).resolve()
        except (OSError, RuntimeError):  # a symlink loop (RuntimeError before Python 3.13)
            return None
        if not real.is_relative_to(base) or not real.is_file():
            return None
        return real

    def summaries(self) -> list[SeasonSummary]:
        """Every season, newest report first."""
        base = self._base()
        if base is None:
            return []
        found: list[SeasonSummary] = []
        try:
            with os.scandir(base) as entries:
                seen = {entry.name for entry in entries if valid_name(entry.name)}
        except OSError as exc:
            log.warning("the seasons folder cannot be listed: %s", exc)
            return []
        for season_id in seen:
            try:
                summary = self._summary_of(base, season_id)
                if summary is not None:
                    found.append(self._with_files(base, summary))
            except OSError as exc:  # a folder removed or unreadable meanwhile
                log.warning("season %s cannot be read: %s", season_id, exc)
        with self._lock:
            for gone in self._parsed.keys() - seen:
                del self._parsed[gone]
        found.sort(key=lambda s: (s.created, s.id), reverse=True)
        return found

    def _summary_of(self, base: Path, season_id: str) -> SeasonSummary | None:
        report = self._inside(base, season_id, REPORT_FILE)
        if report is None:
            return None
        try:
            status = report.stat()
        except OSError:
            return None
        stamp = (status.st_mtime_ns, status.st_size)
        with self._lock:
            cached = self._parsed.get(season_id)
        if cached is not None and cached.stamp == stamp:
            return cached.summary
        parsed = _Parsed(stamp, _summary(season_id, report, status.st_mtime_ns))
        with self._lock:
            self._parsed[season_id] = parsed
        return parsed.summary

    def _with_files(self, base: Path, summary: SeasonSummary) -> SeasonSummary:
        """``summary`` with what else its folder has now (a page and charts come later)."""
        charts_dir = base / summary.id / CHARTS_DIR
        names = []
        if charts_dir.is_dir():
            with os.scandir(charts_dir) as entries:
                for entry in entries:
                    name = entry.name.removesuffix(".png")
                    chart = name != entry.name and valid_name(name)
                    if chart and self._inside(base, summary.id, CHARTS_DIR, entry.name):
                        names.append(name)
        page = self._inside(base, summary.id, PAGE_FILE) is not None
        return summary.model_copy(update={"report_html": page, "charts": tuple(sorted(names))})

    def file(self, season_id: str, *parts: str) -> Path:
        """The real path of a season's file (``report.json``, ``report.html``,
        ``charts/<name>.png``); :class:`InvalidName` for a name that is not one,
        :class:`SeasonFileMissing` when there is no such season or file."""
        _checked(season_id, "season id")
        base = self._base()
        if base is None:
            raise SeasonFileMissing(self._no_folder())
        if self._inside(base, season_id, REPORT_FILE) is None:
            raise SeasonFileMissing(f"no season {season_id!r}")
        found = self._inside(base, season_id, *parts)
        if found is None:
            raise SeasonFileMissing(f"season {season_id!r} has no {'/'.join(parts)}")
        return found

    def chart(self, season_id: str, name: str) -> Path:
        """A season's ``charts/<name>.png``."""
        return self.file(season_id, CHARTS_DIR, f"{_checked(name, 'chart name')}.png")

    def _no_folder(self) -> str:
        if self._root is None:
            return "no seasons are served here: ARENA_SEASONS_DIR is not set"
        return "no seasons are served here: ARENA_SEASONS_DIR is not a folder"
