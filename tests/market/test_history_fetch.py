"""Fetching Binance public history from a local server laid out like data.binance.vision."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from services.market.history.cli import main
from services.market.history.fetch import Fetcher, Outcome, Summary
from services.market.history.paths import Kind, RemoteFile, parse_bound, plan

SYMBOLS = ("BTCUSDT", "ETHUSDT")


def _zip(name: str, size: int = 20_000) -> bytes:
    buffer = io.BytesIO()
    # Stored, not deflated: the body is big enough to be cut in the middle.
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(name.replace(".zip", ".csv"), (name * (size // len(name) + 1))[:size])
    return buffer.getvalue()


class Archive:
    """What the server holds, what it was asked, and the faults it injects."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.cut: dict[str, int] = {}  # path -> responses still to cut mid-body
        self.corrupt: dict[str, int] = {}  # path -> responses still to serve corrupted
        self.honour_range = True

    def add(self, remote: RemoteFile) -> None:
        body = _zip(remote.path.name)
        path = f"/{remote.path}"
        self.files[path] = body
        digest = hashlib.sha256(body).hexdigest()
        self.files[path + ".CHECKSUM"] = f"{digest}  {remote.path.name}\n".encode()

    def zip_requests(self) -> list[tuple[str, str | None]]:
        return [r for r in self.requests if r[0].endswith(".zip")]


def _handler(archive: Archive) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            wanted = self.headers.get("Range")
            archive.requests.append((self.path, wanted))
            body = archive.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            start = 0
            if wanted and archive.honour_range:
                start = int(wanted.removeprefix("bytes=").rstrip("-"))
            if archive.corrupt.get(self.path, 0) > 0:
                archive.corrupt[self.path] -= 1
                body = body[:100] + bytes([body[100] ^ 0xFF]) + body[101:]
            self.send_response(206 if start else 200)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            if archive.cut.get(self.path, 0) > 0:
                archive.cut[self.path] -= 1
                self.wfile.write(body[start : start + (len(body) - start) // 2])
                self.wfile.flush()
                self.connection.close()  # the client sees fewer bytes than announced
                return
            self.wfile.write(body[start:])

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def archive() -> Archive:
    return Archive()


@pytest.fixture
def base_url(archive: Archive) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(archive))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def _publish_months(archive: Archive, symbols: tuple[str, ...], months: list[str]) -> None:
    for symbol in symbols:
        for month in months:
            for kind in Kind:
                archive.add(RemoteFile(symbol, kind, month))


def _fetch(base_url: str, directory: Path, start: str, end: str) -> tuple[Summary, list[str]]:
    lines: list[str] = []
    wanted = plan(SYMBOLS, parse_bound(start, end=False), parse_bound(end, end=True))
    with httpx.Client() as client:
        summary = Fetcher(client, base_url, directory, lines.append).fetch(wanted)
    return summary, lines


def _local(directory: Path, remote: RemoteFile) -> Path:
    return directory / remote.local


def test_plan_of_whole_and_partial_months() -> None:
    wanted = plan(("BTCUSDT",), parse_bound("2025-01", end=False), parse_bound("2025-02", end=True))
    assert [w.monthly.period for w in wanted if w.monthly] == ["2025-01"] * 3 + ["2025-02"] * 3
    assert len(wanted[0].daily) == 31 and wanted[2].daily == ()  # funding: monthly only
    assert [str(w.monthly.path) for w in wanted[1:3] if w.monthly] == [
        "data/futures/um/monthly/markPriceKlines/BTCUSDT/1m/BTCUSDT-1m-2025-01.zip",
        "data/futures/um/monthly/fundingRate/BTCUSDT/BTCUSDT-fundingRate-2025-01.zip",
    ]
    partial = plan(("BTCUSDT",), date(2025, 1, 30), date(2025, 2, 1))
    assert partial[0].monthly is None
    assert [str(f.local) for f in partial[0].daily] == [
        "futures/um/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2025-01-30.zip",
        "futures/um/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2025-01-31.zip",
    ]
    assert partial[2].monthly == RemoteFile("BTCUSDT", Kind.FUNDING, "2025-01")
    with pytest.raises(ValueError, match="neither"):
        parse_bound("2025/01", end=False)


def test_a_full_fetch_is_verified_and_a_second_run_asks_nothing(
    archive: Archive, base_url: str, tmp_path: Path
) -> None:
    _publish_months(archive, SYMBOLS, ["2025-01", "2025-02"])
    summary, lines = _fetch(base_url, tmp_path, "2025-01", "2025-02")
    assert summary.complete and len(archive.zip_requests()) == 12
    for remote in (
        RemoteFile(s, k, m) for s in SYMBOLS for k in Kind for m in ("2025-01", "2025-02")
    ):
        assert _local(tmp_path, remote).read_bytes() == archive.files[f"/{remote.path}"]
    assert sum("downloaded and verified" in line for line in lines) == 12
    assert lines[-1] == "done: 12 downloaded, 0 already here, 0 missing, 0 failed"
    archive.requests.clear()
    summary, lines = _fetch(base_url, tmp_path, "2025-01", "2025-02")
    assert summary.complete and archive.requests == []
    assert lines[-1] == "done: 0 downloaded, 12 already here, 0 missing, 0 failed"


def test_a_month_not_published_whole_is_fetched_day_by_day_and_gaps_are_reported(
    archive: Archive, base_url: str, tmp_path: Path
) -> None:
    _publish_months(archive, ("BTCUSDT",), ["2025-01"])
    for day in range(1, 28):  # February's last day is not out yet; ETHUSDT not at all
        for kind in (Kind.KLINES, Kind.MARK):
            archive.add(RemoteFile("BTCUSDT", kind, f"2025-02-{day:02d}"))
    summary, lines = _fetch(base_url, tmp_path, "2025-01", "2025-02")
    assert not summary.complete
    assert "BTCUSDT klines 2025-02: no monthly file, fetching its days" in lines
    assert _local(tmp_path, RemoteFile("BTCUSDT", Kind.MARK, "2025-02-27")).exists()
    assert set(summary.missing) >= {
        "BTCUSDT klines 2025-02-28",
        "BTCUSDT markPriceKlines 2025-02-28",
        "BTCUSDT fundingRate 2025-02",
        "ETHUSDT klines 2025-01-01",
        "ETHUSDT fundingRate 2025-01",
    }
    assert not any(m.startswith("BTCUSDT") and "2025-01" in m for m in summary.missing)
    assert summary.counts[Outcome.DOWNLOADED] == 3 + 2 * 27
    assert lines[-1] == (
        "MISSING on the server: BTCUSDT klines 2025-02-28, BTCUSDT markPriceKlines 2025-02-28, "
        "BTCUSDT fundingRate 2025-02, ETHUSDT klines 2025-01-01..2025-01-31, "
        "ETHUSDT markPriceKlines 2025-01-01..2025-01-31, ETHUSDT fundingRate 2025-01, "
        "ETHUSDT klines 2025-02-01..2025-02-28, ETHUSDT markPriceKlines 2025-02-01..2025-02-28, "
        "ETHUSDT fundingRate 2025-02"
    )


def test_a_corrupted_download_is_deleted_and_fetched_again(
    archive: Archive, base_url: str, tmp_path: Path
) -> None:
    _publish_months(archive, SYMBOLS, ["2025-01"])
    bad = RemoteFile("ETHUSDT", Kind.KLINES, "2025-01")
    archive.corrupt[f"/{bad.path}"] = 1
    summary, lines = _fetch(base_url, tmp_path, "2025-01", "2025-01")
    assert summary.complete
    assert f"{bad}: CHECKSUM MISMATCH, download deleted, retrying" in lines
    assert _local(tmp_path, bad).read_bytes() == archive.files[f"/{bad.path}"]

    # Twice corrupted: reported failed, nothing left behind that looks verified.
    archive.corrupt[f"/{bad.path}"] = 2
    _local(tmp_path, bad).write_bytes(b"damaged on disk")
    summary, lines = _fetch(base_url, tmp_path, "2025-01", "2025-01")
    assert f"{bad}: the local copy does not match its checksum, deleted" in lines
    assert summary.failed == [str(bad)] and not _local(tmp_path, bad).exists()
    assert not _local(tmp_path, bad).with_name(bad.path.name + ".part").exists()


def test_an_interrupted_download_resumes_with_a_range_request(
    archive: Archive, base_url: str, tmp_path: Path
) -> None:
    _publish_months(archive, SYMBOLS, ["2025-01"])
    cut = RemoteFile("BTCUSDT", Kind.MARK, "2025-01")
    path = f"/{cut.path}"
    archive.cut[path] = 3  # cut every attempt of this run
    summary, _ = _fetch(base_url, tmp_path, "2025-01", "2025-01")
    assert summary.failed == [str(cut)]
    part = _local(tmp_path, cut).with_name(cut.path.name + ".part")
    size = len(archive.files[path])
    # Each attempt continued from what the last one left.
    assert [r for p, r in archive.zip_requests() if p == path] == [
        None,
        f"bytes={size // 2}-",
        f"bytes={size // 2 + (size - size // 2) // 2}-",
    ]
    have = part.stat().st_size
    assert 0 < have < size

    archive.requests.clear()
    summary, lines = _fetch(base_url, tmp_path, "2025-01", "2025-01")
    assert summary.complete and summary.counts[Outcome.PRESENT] == 5
    # Only the interrupted file was asked for again, from where it stopped.
    assert archive.zip_requests() == [(path, f"bytes={have}-")]
    assert _local(tmp_path, cut).read_bytes() == archive.files[path] and not part.exists()
    assert any("resuming" in line for line in lines)


def test_a_server_ignoring_ranges_restarts_the_download(
    archive: Archive, base_url: str, tmp_path: Path
) -> None:
    _publish_months(archive, ("BTCUSDT",), ["2025-01"])
    archive.honour_range = False
    cut = RemoteFile("BTCUSDT", Kind.FUNDING, "2025-01")
    archive.cut[f"/{cut.path}"] = 1
    summary, lines = _fetch(base_url, tmp_path, "2025-01", "2025-01")
    assert str(cut) not in summary.failed
    assert any("the server restarts it" in line for line in lines)
    assert _local(tmp_path, cut).read_bytes() == archive.files[f"/{cut.path}"]


def test_the_command_line(
    archive: Archive, base_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _publish_months(archive, ("BTCUSDT",), ["2025-01"])
    argv = ["fetch", "--symbols", "btcusdt", "--from", "2025-01-01", "--to", "2025-01-31"]
    assert main([*argv, "--dir", str(tmp_path), "--base-url", base_url]) == 0
    assert "done: 3 downloaded" in capsys.readouterr().out
    assert main([*argv[:-1], "2025-02-01", "--dir", str(tmp_path), "--base-url", base_url]) == 1
    assert "MISSING on the server: BTCUSDT klines 2025-02-01" in capsys.readouterr().out


def test_python_m_services_market_history_reaches_the_fetch_command() -> None:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-m", "services.market", "history", "fetch", "--help"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and "--symbols" in done.stdout
