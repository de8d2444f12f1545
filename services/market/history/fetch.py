"""Downloading the planned files: checksums, resuming, a line per file and a summary.

A file is done when its zip and its ``.CHECKSUM`` are both in the directory and agree;
a later run skips it without asking the server. A download goes to ``<file>.part`` first:
an interrupted one is continued with an HTTP Range request (restarted when the server
answers the whole file instead), and the zip is renamed into place only once its sha256
matches the checksum. A mismatch deletes the download, says so, and tries once more.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from pathlib import Path

import httpx

from services.market.history.paths import Kind, RemoteFile, Wanted, parse_checksum

TRANSFER_ATTEMPTS = 3
CHUNK = 1 << 16


class Outcome(StrEnum):
    PRESENT = "already verified"
    DOWNLOADED = "downloaded and verified"
    MISSING = "missing (not on the server)"
    FAILED = "failed"


class _NotFound(Exception):
    pass


class _Failed(Exception):
    pass


@dataclass
class Summary:
    counts: dict[Outcome, int] = field(default_factory=lambda: dict.fromkeys(Outcome, 0))
    missing: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.missing and not self.failed

    def lines(self) -> list[str]:
        c = self.counts
        out = [
            f"done: {c[Outcome.DOWNLOADED]} downloaded, {c[Outcome.PRESENT]} already here, "
            f"{len(self.missing)} missing, {len(self.failed)} failed"
        ]
        if self.missing:
            out.append("MISSING on the server: " + ", ".join(_spans(self.missing)))
        if self.failed:
            out.append("FAILED (run again to resume): " + ", ".join(self.failed))
        return out


def _spans(names: list[str]) -> list[str]:
    """Consecutive days of one symbol and kind as one span, in the order they were fetched:
    ``BTCUSDT klines 2025-02-01..2025-02-28``."""
    spans: list[str] = []
    start = previous = ""
    for name in [*names, ""]:
        head, _, period = name.rpartition(" ")
        if previous and len(period) == 10 and head == previous.rpartition(" ")[0]:
            last = date.fromisoformat(previous.rpartition(" ")[2])
            if date.fromisoformat(period) == last + timedelta(days=1):
                previous = name
                continue
        if start:
            spans.append(start if start == previous else f"{start}..{previous[-10:]}")
        start = previous = name
    return spans


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


class Fetcher:
    """Fetches files of ``base_url`` into ``directory``, reporting each through ``say``."""

    def __init__(
        self, client: httpx.Client, base_url: str, directory: Path, say: Callable[[str], None]
    ) -> None:
        self._client = client
        self._base = base_url.rstrip("/")
        self._directory = directory
        self._say = say

    def fetch(self, wanted: Iterable[Wanted]) -> Summary:
        summary = Summary()
        for item in wanted:
            if item.monthly is not None:
                outcome = self.file(item.monthly)
                if outcome is not Outcome.MISSING or not item.daily:
                    self._count(summary, item.monthly, outcome)
                    continue
                self._say(f"{item.monthly}: no monthly file, fetching its days")
            for daily in item.daily:
                self._count(summary, daily, self.file(daily))
        for line in summary.lines():
            self._say(line)
        return summary

    def _count(self, summary: Summary, remote: RemoteFile, outcome: Outcome) -> None:
        summary.counts[outcome] += 1
        if outcome is Outcome.MISSING:
            summary.missing.append(str(remote))
        elif outcome is Outcome.FAILED:
            summary.failed.append(str(remote))

    def file(self, remote: RemoteFile) -> Outcome:
        """Make sure ``remote`` is here and verified; says what it did (but monthly 404s)."""
        local = self._directory / remote.local
        checksum = local.with_name(local.name + ".CHECKSUM")
        if local.exists() and checksum.exists():
            if sha256(local) == parse_checksum(checksum.read_text()):
                self._say(f"{remote}: {Outcome.PRESENT}")
                return Outcome.PRESENT
            self._say(f"{remote}: the local copy does not match its checksum, deleted")
            local.unlink()
        try:
            text = self._get_text(f"{self._base}/{remote.path}.CHECKSUM")
            expected = parse_checksum(text)
            local.parent.mkdir(parents=True, exist_ok=True)
            part = local.with_name(local.name + ".part")
            for attempt in (1, 2):
                size = self._download(f"{self._base}/{remote.path}", part)
                if sha256(part) == expected:
                    part.replace(local)
                    checksum.write_text(text)
                    self._say(f"{remote}: {Outcome.DOWNLOADED} ({size:,} bytes)")
                    return Outcome.DOWNLOADED
                part.unlink()
                retry = "retrying" if attempt == 1 else "giving up"
                self._say(f"{remote}: CHECKSUM MISMATCH, download deleted, {retry}")
            return Outcome.FAILED
        except _NotFound:
            if not remote.daily and remote.kind is not Kind.FUNDING:
                return Outcome.MISSING  # the caller falls back to the days and says so
            self._say(f"{remote}: {Outcome.MISSING}")
            return Outcome.MISSING
        except (_Failed, ValueError, httpx.HTTPError) as exc:
            self._say(f"{remote}: {Outcome.FAILED}: {exc}")
            return Outcome.FAILED

    def _get_text(self, url: str) -> str:
        response = self._client.get(url)
        if response.status_code == 404:
            raise _NotFound(url)
        response.raise_for_status()
        return response.text

    def _download(self, url: str, part: Path) -> int:
        """Fetch ``url`` into ``part``, continuing what it holds; returns its size."""
        problem: Exception | None = None
        for _ in range(TRANSFER_ATTEMPTS):
            have = part.stat().st_size if part.exists() else 0
            headers = {"Range": f"bytes={have}-"} if have else {}
            try:
                with self._client.stream("GET", url, headers=headers) as response:
                    if response.status_code == 404:
                        raise _NotFound(url)
                    if response.status_code == 416:  # the part is whole already
                        return have
                    response.raise_for_status()
                    resumed = response.status_code == 206 and response.headers.get(
                        "content-range", ""
                    ).startswith(f"bytes {have}-")
                    if have:
                        how = "resuming" if resumed else "the server restarts it"
                        self._say(f"  {part.name}: {have:,} bytes here, {how}")
                    with part.open("ab" if resumed else "wb") as out:
                        for chunk in response.iter_bytes():
                            out.write(chunk)
                return part.stat().st_size
            except httpx.TransportError as exc:
                problem = exc
                self._say(f"  {part.name}: interrupted ({exc.__class__.__name__})")
        raise _Failed(f"{TRANSFER_ATTEMPTS} interrupted transfers, last: {problem}")
