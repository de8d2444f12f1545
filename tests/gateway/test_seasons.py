"""``/seasons``: the season reports of ARENA_SEASONS_DIR, listed and served read-only, and
nothing outside that folder reachable whatever the path says."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from services.gateway.routers.seasons import REPORT_PAGE_POLICY
from services.gateway.seasons import InvalidName, SeasonFileMissing, SeasonShelf
from services.gateway.security import CONTENT_SECURITY_POLICY
from tests.gateway.harness import Gateway, MakeSettings, gateway
from tests.gateway.season_files import PNG, report, write_season

OLDER = 1_735_800_000.0  # 2025-01-02T06:40:00Z
NEWER = OLDER + 3600


async def raw_get(port: int, target: str) -> tuple[int, bytes]:
    """``GET target`` sent byte for byte (an HTTP client would normalise ``..`` away)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        answer = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.fixture
def seasons_root(tmp_path: Path) -> Path:
    """Two seasons, one with a page and a chart; beside the root, a secret and a season
    that symlinks inside the root point to."""
    root = tmp_path / "seasons"
    q1 = write_season(root, "q1", report({"momentum": 16.1, "random": -3.5}), mtime=OLDER)
    (q1 / "report.html").write_text("<h1>Season q1</h1>", encoding="utf-8")
    (q1 / "charts").mkdir()
    (q1 / "charts" / "equity.png").write_bytes(PNG)
    write_season(root, "q2.run-2_b", report({"momentum": 1.0, "llm": 2.0}), mtime=NEWER)
    (root / "notes").mkdir()  # no report.json: not a season
    write_season(root, ".partial", report({"x": 1.0}))  # hidden: not a season
    outside = write_season(tmp_path, "elsewhere", report({"leak": 1.0}))
    (tmp_path / "secret.json").write_text('{"secret": true}', encoding="utf-8")
    (root / "linked").symlink_to(outside, target_is_directory=True)
    sneaky = root / "sneaky"
    sneaky.mkdir()
    (sneaky / "report.json").symlink_to(tmp_path / "secret.json")
    (q1 / "charts" / "leak.png").symlink_to(tmp_path / "secret.json")
    (q1 / "charts" / "inner.png").symlink_to(q1 / "charts" / "equity.png")
    (root / "loop").symlink_to(root / "loop")
    (q1 / "charts" / "loop.png").symlink_to(q1 / "charts" / "loop.png")
    return root


@pytest.fixture
async def gw_seasons(
    nats_url: str, make_settings: MakeSettings, seasons_root: Path
) -> AsyncIterator[Gateway]:
    async with gateway(
        nats_url, make_settings, ledger=False, market=False, ARENA_SEASONS_DIR=str(seasons_root)
    ) as running:
        yield running


async def test_seasons_are_listed_newest_first_with_what_their_reports_say(
    gw_seasons: Gateway,
) -> None:
    answer = await gw_seasons.http.get("/seasons")
    assert answer.status_code == 200
    listed = answer.json()
    assert [s["id"] for s in listed] == ["q2.run-2_b", "q1"]
    q1 = listed[1]
    assert q1["runs"] == 2 and q1["cycles"] == 288
    assert q1["agents"] == ["momentum", "random"]
    assert q1["season"]["from"] == "2025-01-02"
    assert q1["created"] == "2025-01-02T06:40:00Z"
    # Its page and charts; a chart linked from outside the folder is not one.
    assert (q1["report_html"], q1["charts"]) == (True, ["equity", "inner"])
    assert (listed[0]["report_html"], listed[0]["charts"]) == (False, [])


async def test_a_season_s_report_page_and_charts_are_served_as_written(
    gw_seasons: Gateway, seasons_root: Path
) -> None:
    http = gw_seasons.http
    answer = await http.get("/seasons/q1/report")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.content == (seasons_root / "q1" / "report.json").read_bytes()

    page = await http.get("/seasons/q1/report.html")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.text == "<h1>Season q1</h1>"
    # The page may style itself and show images, and runs nothing.
    assert page.headers["content-security-policy"] == REPORT_PAGE_POLICY
    assert "script-src" not in REPORT_PAGE_POLICY and "default-src 'none'" in REPORT_PAGE_POLICY

    chart = await http.get("/seasons/q1/charts/equity.png")
    assert (chart.status_code, chart.headers["content-type"], chart.content) == (
        200,
        "image/png",
        PNG,
    )
    assert chart.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert (await http.get("/seasons/q1/charts/inner.png")).content == PNG

    for missing, why in [
        ("/seasons/q2.run-2_b/report.html", "season 'q2.run-2_b' has no report.html"),
        ("/seasons/q1/charts/drawdown.png", "season 'q1' has no charts/drawdown.png"),
        ("/seasons/nope/report", "no season 'nope'"),
        ("/seasons/notes/report", "no season 'notes'"),
    ]:
        answer = await http.get(missing)
        assert (answer.status_code, answer.json()) == (404, {"detail": why}), missing


async def test_nothing_outside_the_seasons_folder_is_reachable(gw_seasons: Gateway) -> None:
    port = gw_seasons.settings.gateway_port
    refused = {
        # A name that is not a season's: 400.
        "/seasons/../report": 400,
        "/seasons/%2e%2e/report": 400,
        "/seasons/%2E%2E/report.html": 400,
        "/seasons/./report": 400,
        "/seasons/.partial/report": 400,
        "/seasons/q1/charts/%2e%2e/..png": 404,
        "/seasons/q1/charts/..png": 400,
        "/seasons/q1/charts/%2e.png": 400,
        "/seasons/q%201/report": 400,
        # Paths of several segments, absolute paths: no such route.
        "/seasons/..%2f..%2fsecret.json/report": 404,
        "/seasons/..%2Fsecret.json": 404,
        "/seasons/%2Fetc%2Fpasswd/report": 404,
        "/seasons//etc/passwd/report": 404,
        "/seasons/q1/charts/..%2f..%2f..%2fsecret.png": 404,
        # Symlinks pointing out of the folder: as if absent.
        "/seasons/linked/report": 404,
        "/seasons/sneaky/report": 404,
        "/seasons/q1/charts/leak.png": 404,
        "/seasons/loop/report": 404,
        "/seasons/q1/charts/loop.png": 404,
    }
    for target, status in refused.items():
        code, body = await raw_get(port, target)
        assert code == status, (target, code, body)
        assert b'"secret": true' not in body and b'"leak"' not in body
    listed = (await gw_seasons.http.get("/seasons")).json()
    assert {s["id"] for s in listed} == {"q1", "q2.run-2_b"}


async def test_without_a_seasons_folder_the_list_is_empty_and_reports_404(
    nats_url: str, make_settings: MakeSettings, tmp_path: Path
) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({}, "ARENA_SEASONS_DIR is not set"),
        ({"ARENA_SEASONS_DIR": str(tmp_path / "nowhere")}, "ARENA_SEASONS_DIR is not a folder"),
    ]
    for configured, why in cases:
        async with gateway(nats_url, make_settings, ledger=False, market=False, **configured) as gw:
            listed = await gw.http.get("/seasons")
            assert (listed.status_code, listed.json()) == (200, [])
            missing = await gw.http.get("/seasons/q1/report")
            assert missing.status_code == 404
            assert missing.json() == {"detail": f"no seasons are served here: {why}"}


# ------------------------------------------------------------------ the shelf itself


def test_a_report_is_parsed_again_only_when_it_changes(tmp_path: Path) -> None:
    shelf = SeasonShelf(tmp_path)
    folder = write_season(tmp_path, "s", report({"a": 1.0, "b": 2.0}), mtime=OLDER)
    assert [s.agents for s in shelf.summaries()] == [("a", "b")]
    path = folder / "report.json"
    stamp = path.stat().st_mtime_ns
    size = path.stat().st_size
    # Same size and time: the summary read before stands, the file is not read again.
    path.write_bytes(b" " * size)
    os.utime(path, ns=(stamp, stamp))
    assert [s.agents for s in shelf.summaries()] == [("a", "b")]
    # Written again: read again.
    write_season(tmp_path, "s", report({"c": 1.0}), mtime=NEWER)
    assert [s.agents for s in shelf.summaries()] == [("c",)]
    # Unreadable: left out, not an error.
    path.write_text("{not json", encoding="utf-8")
    assert shelf.summaries() == []
    path.write_text(json.dumps([1, 2]), encoding="utf-8")
    assert shelf.summaries() == []


def test_names_are_checked_before_any_path_is_built(tmp_path: Path) -> None:
    shelf = SeasonShelf(tmp_path)
    write_season(tmp_path, "s", report({"a": 1.0}))
    for bad in ["..", ".", "", "/etc", "a/b", "a\\b", "..\\..", "s\x00", ".s", "ü"]:
        with pytest.raises(InvalidName):
            shelf.file(bad, "report.json")
        with pytest.raises(InvalidName):
            shelf.chart("s", bad)
    assert shelf.file("s", "report.json") == (tmp_path / "s" / "report.json").resolve()
    with pytest.raises(SeasonFileMissing):
        shelf.chart("s", "equity")
    assert SeasonShelf(None).summaries() == []
