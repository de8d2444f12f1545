"""The dashboard in a real Chromium driven by Playwright: it loads, shows the agents,
updates after a cycle (asking again for what failed to load), and shows a model's
reasoning as text, never as HTML; its Seasons page shows a season's report, agent ids as
text."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from services.common import subjects
from services.common.clock import ManualClock
from services.common.contracts import AgentOutcome, CycleCompleted, Interval
from services.common.runner import ServiceHost
from services.common.settings import PROJECT_ROOT
from services.gateway.service import build
from tests import builders
from tests.chromium import watched_page
from tests.gateway import standins
from tests.gateway.harness import LINEUP, NOW, MakeSettings, gateway
from tests.gateway.season_files import report, write_season
from tests.support import eventually

playwright_api = pytest.importorskip(
    "playwright.async_api", reason="playwright is not installed (pip install -e '.[dev]')"
)

XSS = "<img src=x onerror=alert(1)>"
SCREENSHOT = PROJECT_ROOT / "test-artifacts" / "dashboard.png"
SEASONS_SCREENSHOT = SCREENSHOT.with_name("dashboard-seasons.png")


async def test_dashboard_shows_the_race_live_and_model_text_as_text(
    nats_url: str, make_settings: MakeSettings, browser: object
) -> None:
    state = standins.ArenaState()
    # The stand-ins answer in this test's event loop, which drives the browser too: under
    # load an answer can take longer than the harness's short timeout.
    async with gateway(nats_url, make_settings, state=state, ARENA_REQUEST_TIMEOUT=5) as gw:
        watched = await watched_page(browser, viewport={"width": 1400, "height": 1500})
        page = watched.page
        await page.goto(f"{gw.base_url}/dashboard/")

        expect = playwright_api.expect
        await expect(page.locator("#connection")).to_have_text("live")
        rows = page.locator("#leaderboard tbody tr[data-agent]")
        await expect(rows).to_have_count(3)
        await expect(page.locator("#positions tbody tr")).to_have_count(3)
        await expect(page.locator("#source")).to_have_text("source: simulator")
        await expect(page.locator("#chart .uplot")).to_have_count(1)
        await expect(page.locator("#decisions li")).to_have_count(1)
        # Each agent's model usage from /trading/stats; a baseline makes no call.
        usage = page.locator('#leaderboard tbody tr[data-agent="momentum"]')
        await expect(usage).to_contain_text("24.5k / 3100")
        await expect(usage).to_contain_text("850 ms / 2.14 s")
        baseline = page.locator('#leaderboard tr[data-agent="random"] td').last
        await expect(baseline).to_have_class("muted")
        await _intervals_shown(page)

        # A cycle: the ledger's state moves on, then the events arrive over NATS.
        state.equity["random"] = Decimal("104.50")
        state.evidence["random"] = {
            "return_interval_pct": Interval(value=4.5, lower=0.25, upper=9.0),
            "alpha_pct": Interval(value=30.0, lower=-5.0, upper=61.0),
            "beta": 1.1,
            "evidence_cycles": 3,
        }
        state.record_equity(builders.NOW + timedelta(minutes=5))
        hostile = standins.decision("random", "c-1", f"Going long. {XSS} Stop below support.")
        disabled = standins.decision("momentum", "c-1", "").model_copy(
            update={"error": "disabled: ANTHROPIC_API_KEY is not set"}
        )
        state.decisions += [hostile, disabled]
        publisher = await standins.connect(nats_url, "publisher")
        await publisher.publish(subjects.decision_proposed("random"), hostile, hostile.decision_id)
        await publisher.publish(
            subjects.decision_proposed("momentum"), disabled, disabled.decision_id
        )
        await publisher.publish(
            subjects.agent_heartbeat("mean-reversion"),
            builders.disabled_heartbeat(
                "mean-reversion", "rsi-reversion", "too many parse failures", NOW
            ),
            "hb-1",
        )
        await publisher.publish(
            subjects.CYCLE_COMPLETED,
            CycleCompleted(
                cycle_id="c-1",
                completed_at=NOW,
                duration_seconds=1.0,
                timed_out=False,
                outcomes=(AgentOutcome(agent_id="random", status="applied", opened=1),),
            ),
            "c-1",
        )
        await publisher.close()

        await expect(rows.first).to_have_attribute("data-agent", "random")
        await expect(rows.first).to_contain_text("104.50")
        await expect(rows.first.locator("td").nth(4)).to_have_text("+4.50 % [0.25, 9.00]")
        # Each error as what it is: a disabled agent's HOLD is no parse error.
        held = page.locator('#decisions li[data-decision="c-1:momentum"] .error')
        await expect(held).to_have_text("disabled: ANTHROPIC_API_KEY is not set")
        feed = page.locator('#decisions li[data-decision="c-1:random"]')
        await expect(feed).to_contain_text(XSS)  # the markup, shown as characters
        assert await page.locator("#decisions img").count() == 0
        await expect(page.locator("#agents")).to_contain_text("too many parse failures")

        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SCREENSHOT), full_page=True)
        print(f"\ndashboard screenshot: {SCREENSHOT}")
        assert watched.dialogs == [], "a script from model text ran"
        assert watched.errors == []
        await eventually(lambda: gw.sample("arena_gateway_ws_clients") == 1, what="one client")


async def _intervals_shown(page: object) -> None:
    """The return and alpha vs BTC so far with their intervals, the 5th and 6th cells;
    none yet (a muted cell) for an agent without them."""
    expect = playwright_api.expect
    cells = page.locator('#leaderboard tbody tr[data-agent="momentum"] td')  # type: ignore[attr-defined]
    await expect(cells.nth(4)).to_have_text("+1.23 % [-2.50, 5.75]")
    await expect(cells.nth(5)).to_have_text("-12.30 % [-70.20, -1.05]")
    await expect(cells.nth(5)).to_have_class("neg")  # below zero, all of it
    title = "95 % bootstrap interval over 288 completed cycles, percent a year; beta 0.42"
    await expect(cells.nth(5)).to_have_attribute("title", title)
    unknown = page.locator('#leaderboard tr[data-agent="random"] td')  # type: ignore[attr-defined]
    await expect(unknown.nth(4)).to_have_class("muted")
    await expect(unknown.nth(5)).to_have_class("muted")


async def test_a_part_that_fails_to_refresh_is_asked_again_until_it_loads(
    nats_url: str, make_settings: MakeSettings, browser: object
) -> None:
    state = standins.ArenaState()
    async with gateway(nats_url, make_settings, state=state, ARENA_REQUEST_TIMEOUT=5) as gw:
        page = await browser.new_page()  # type: ignore[attr-defined]
        await page.goto(f"{gw.base_url}/dashboard/")
        expect = playwright_api.expect
        rows = page.locator("#leaderboard tbody tr[data-agent]")
        await expect(rows).to_have_count(3)
        await expect(rows.first).to_have_attribute("data-agent", "momentum")
        banner = page.locator("#banner")
        await expect(banner).to_be_hidden()

        # A cycle completes while the ledger cannot answer the leaderboard.
        state.failing.add("leaderboard")
        state.equity["random"] = Decimal("104.50")
        publisher = await standins.connect(nats_url, "publisher")
        completed = CycleCompleted(
            cycle_id="c-1", completed_at=NOW, duration_seconds=1.0, timed_out=False, outcomes=()
        )
        await publisher.publish(subjects.CYCLE_COMPLETED, completed, "c-1")
        await publisher.close()
        await expect(banner).to_contain_text("the leaderboard cannot be read just now")
        await expect(rows.first).to_have_attribute("data-agent", "momentum")

        # Readable again: the next attempt shows it, and the message goes.
        state.failing.clear()
        await expect(rows.first).to_have_attribute("data-agent", "random", timeout=10_000)
        await expect(banner).to_be_hidden()


async def test_dashboard_says_when_disconnected_and_reconnects_by_itself(
    nats_url: str, make_settings: MakeSettings, browser: object
) -> None:
    ledger = await standins.ledger(nats_url)
    settings = make_settings(ARENA_AGENTS_FILE=str(LINEUP), ARENA_REQUEST_TIMEOUT=0.3)
    first = ServiceHost("gateway", build, settings, ManualClock(NOW))
    await first.start()
    second: ServiceHost | None = None
    try:
        page = await browser.new_page()  # type: ignore[attr-defined]
        await page.goto(f"http://127.0.0.1:{settings.gateway_port}/dashboard/")
        badge = page.locator("#connection")
        expect = playwright_api.expect
        await expect(badge).to_have_text("live")
        await first.stop()
        await expect(badge).to_have_attribute("data-state", "disconnected")
        await expect(badge).to_contain_text("disconnected")
        second = ServiceHost("gateway", build, settings, ManualClock(NOW))
        await second.start()
        await expect(badge).to_have_text("live", timeout=15_000)
        await expect(page.locator("#leaderboard tbody tr[data-agent]")).to_have_count(3)
    finally:
        await first.stop()
        if second is not None:
            await second.stop()
        await ledger.close()


async def test_the_seasons_page_shows_a_season_s_agents_and_matrix_with_ids_as_text(
    nats_url: str, make_settings: MakeSettings, browser: object, tmp_path: Path
) -> None:
    root = tmp_path / "seasons"
    newest = write_season(
        root, "q1", report({"momentum": 16.1, XSS: -3.5, "random": 2.0}), mtime=1_735_900_000
    )
    (newest / "report.html").write_text("<h1>q1</h1>", encoding="utf-8")
    write_season(root, "q0", report({"buy-and-hold": 1.0}), mtime=1_735_800_000)
    async with gateway(nats_url, make_settings, ARENA_SEASONS_DIR=str(root)) as gw:
        watched = await watched_page(browser, viewport={"width": 1400, "height": 1200})
        page = watched.page
        await page.goto(f"{gw.base_url}/dashboard/#seasons")

        expect = playwright_api.expect
        await expect(page.locator("#live")).to_be_hidden()
        await expect(page.locator("#seasons tbody tr[data-season]")).to_have_count(2)
        # The newest season is shown first: its agents by return, each figure with its interval.
        await expect(page.locator("#season-title")).to_have_text("Season q1")
        agents = page.locator("#season-agents tbody tr[data-agent]")
        await expect(agents).to_have_count(3)
        await expect(agents.first).to_have_attribute("data-agent", "momentum")
        await expect(agents.first).to_contain_text("16.10 [11.10, 21.10]")
        await expect(agents.first).to_contain_text("12.50 [-40.00, 65.25]")
        hostile = agents.nth(2)
        await expect(hostile).to_have_attribute("data-agent", XSS)
        await expect(hostile).to_contain_text(XSS)  # the markup, shown as characters
        # The matrix: P(row beats column), coloured, the id as text in its header too.
        matrix = page.locator("#season-pairwise tbody tr")
        await expect(matrix).to_have_count(3)
        await expect(matrix.first.locator("td[data-p]").first).to_have_text("75 %")
        await expect(page.locator("#season-pairwise thead")).to_contain_text(XSS)
        await expect(page.locator("#season-page")).to_have_attribute(
            "href", "/seasons/q1/report.html"
        )
        assert await page.locator("#seasons-page img").count() == 0

        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SEASONS_SCREENSHOT), full_page=True)

        await page.locator('#seasons a[href="#seasons/q0"]').click()
        await expect(page.locator("#season-title")).to_have_text("Season q0")
        await expect(agents).to_have_count(1)
        await expect(page.locator("#season-page")).to_be_hidden()
        await page.locator('#tabs a[data-page="live"]').click()
        await expect(page.locator("#live")).to_be_visible()
        await expect(page.locator("#seasons-page")).to_be_hidden()
        await expect(page.locator("#leaderboard tbody tr[data-agent]")).to_have_count(3)
        assert watched.dialogs == [], "a script from an agent id ran"
        assert watched.errors == []
