"""``report.html`` and its charts: every section, data shown as text, images that are
PNGs inline, the same bytes from the same season, and a page Chromium draws offline.

The season is test_report's (two runs of 600 cycles), its random baseline named like
markup.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from devstack.report import charts, cli, html
from devstack.report.runs import read_run, run_folders
from devstack.report.text import figure as text_of
from tests.report.test_report import CYCLES, _season

HOSTILE = "<script>alert(1)</script>"
PNG = "data:image/png;base64,"


class Page(HTMLParser):
    """The ids, images and text of a page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.images: list[str] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id"):
            self.ids.add(str(found["id"]))
        if tag == "img":
            self.images.append(str(found.get("src")))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.fixture(scope="module")
def season(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = _season(tmp_path_factory.mktemp("season"), random_id=HOSTILE)
    assert cli.write_report(folder, reps=200) is not None
    return folder


def _report(season: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads((season / "report.json").read_text())
    return report


def test_the_page_has_every_section(season: Path) -> None:
    page = Page((season / "report.html").read_text())
    sections = {"season", "agents", "runs", "pairwise", "baselines"}
    tables = {"agents-table", "across-runs", "each-run", "pairwise-table", "against-1"}
    figures = {"chart-equity", "chart-returns", "chart-pairwise", "chart-ranks"}
    assert sections | tables | figures <= page.ids
    assert "chart-reliability" not in page.ids  # no calibration in this report
    text = " ".join(page.text)
    assert "2 of 3" in text  # runs: finished of planned
    assert f"{CYCLES}" in text
    assert "200 resamples" in text
    assert "BTCUSDT held (benchmark)" in text
    assert "Against buy-and-hold" in text
    skilled = _report(season)["agents"]["skilled"]["return_pct"]
    interval = f"{skilled['value']:.1f} % [{skilled['lower']:.1f}, {skilled['upper']:.1f}]"
    assert interval in text


def test_an_agent_id_is_text_never_markup(season: Path) -> None:
    text = (season / "report.html").read_text()
    assert HOSTILE not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<script" not in text
    assert HOSTILE in " ".join(Page(text).text)  # what a reader sees: the id as it is


def test_every_image_is_a_png_inline_and_the_chart_written(season: Path) -> None:
    images = Page((season / "report.html").read_text()).images
    assert len(images) == 4
    written = {path.read_bytes() for path in (season / "charts").glob("*.png")}
    assert len(written) == 4
    for src in images:
        assert src.startswith(PNG)
        png = base64.b64decode(src[len(PNG) :], validate=True)
        assert png in written
        Image.open(io.BytesIO(png)).verify()


def test_the_same_season_gives_the_same_bytes(season: Path, tmp_path: Path) -> None:
    again = _season(tmp_path, random_id=HOSTILE)
    assert cli.write_report(again, reps=200) is not None
    for name in ("report.html", *(f"charts/{c}.png" for c in ("equity", "pairwise", "ranks"))):
        assert (again / name).read_bytes() == (season / name).read_bytes(), name


def test_figures_added_to_the_report_are_shown_and_absent_ones_left_out(season: Path) -> None:
    report = _report(season)
    runs = [read_run(number, folder) for number, folder in run_folders(season)]
    more = copy.deepcopy(report)
    more["agents"]["skilled"].update(
        net_return_pct={"value": 20.0, "lower": 10.0, "upper": 30.0},
        win_rate=0.625,
        calibration={
            "brier": 0.21,
            "decisions": 40,
            "bins": [
                {"count": 10, "mean_confidence": 0.55, "observed": 0.5},
                {"count": 30, "mean_confidence": 0.85, "observed": 0.7},
            ],
        },
        llm={"calls": 40, "cost_usd": 0.125, "latency_ms_p50": None},
    )
    pictures = charts.render(runs, more)
    assert "reliability" in pictures
    page = html.render(more, pictures)
    parsed = Page(page)
    assert "chart-reliability" in parsed.ids
    text = " ".join(parsed.text)
    for shown in ("Return net of LLM cost", "20.0 % [10.0, 30.0]", "Win rate", "62.5 %"):
        assert shown in text
    for shown in ("Calibration", "brier", "0.21", "LLM usage", "0.12 $", "Calibration: bins"):
        assert shown in text

    fewer = copy.deepcopy(report)
    for key in ("pairwise", "against_baselines", "benchmark", "method", "season"):
        del fewer[key]
    kept = {"cycles", "return_pct", "sharpe", "alpha", "beta", "max_drawdown_pct", "trades"}
    fewer["agents"] = {
        agent: {k: v for k, v in figures.items() if k in kept}
        for agent, figures in fewer["agents"].items()
    }
    pictures = charts.render(runs, fewer)
    assert set(pictures) == {"equity", "returns"}
    parsed = Page(html.render(fewer, pictures))
    assert {"season", "agents", "chart-equity", "chart-returns"} <= parsed.ids
    assert not {"pairwise", "baselines", "runs", "more"} & parsed.ids
    assert "Sortino" not in " ".join(parsed.text)


@pytest.mark.parametrize(
    ("key", "value", "text"),
    [
        ("return_pct", {"value": 12.345, "lower": 8.1, "upper": 16.0}, "12.3 % [8.1, 16.0]"),
        ("sharpe", {"value": 1.5, "lower": -0.25, "upper": 3.0}, "1.50 [-0.25, 3.00]"),
        ("calmar", None, "—"),
        ("calmar", 1.0e25, "1.00e+25"),
        ("mean_difference_pct", 0.0545, "0.0545 %"),
        ("trades", 85, "85"),
        ("win_rate", 0.625, "62.5 %"),
        ("llm_cost_usd", 1234.5, "1,234.50 $"),
    ],
)
def test_figures_as_text(key: str, value: object, text: str) -> None:
    assert text_of(key, value) == text


async def test_chromium_draws_every_chart_offline(season: Path, browser: Any) -> None:
    page = await browser.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else 0)
    page.on(
        "request",
        lambda r: None if r.url.startswith(("file:", "data:")) else problems.append(r.url),
    )
    await page.goto((season / "report.html").as_uri())
    widths = await page.eval_on_selector_all(
        "img", "images => images.map(i => i.complete ? i.naturalWidth : 0)"
    )
    assert len(widths) == 4
    assert all(width > 0 for width in widths), widths
    assert await page.locator("#agents-table").count() == 1
    assert re.search(r"skilled", await page.locator("#agents-table").inner_text())
    assert problems == []
