"""A headless Chromium driven by Playwright, for the tests that open a page: the
``browser`` fixture (registered by tests/conftest.py), skipped without Chromium."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    configured = os.environ.get("ARENA_CHROMIUM")
    if configured and Path(configured).exists():
        return configured
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    playwright_api = pytest.importorskip(
        "playwright.async_api", reason="playwright is not installed (pip install -e '.[dev]')"
    )
    executable = chromium_path()
    if executable is None:
        pytest.skip(
            "no Chromium found: run scripts/ensure-test-tools.sh (Debian: apt-get install "
            "chromium) or set ARENA_CHROMIUM"
        )
    async with playwright_api.async_playwright() as pw:
        launched = await pw.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


@dataclass(frozen=True)
class WatchedPage:
    """A page, the messages of the dialogs its scripts opened and the errors they threw."""

    page: Any
    dialogs: list[str]
    errors: list[str]


async def watched_page(browser: object, **options: Any) -> WatchedPage:
    """A new page of ``browser`` (``options``: Playwright's ``new_page``'s) that records
    every dialog (a script injected from data would open one) and every uncaught error."""
    page = await browser.new_page(**options)  # type: ignore[attr-defined]
    watched = WatchedPage(page, [], [])
    page.on("dialog", lambda dialog: watched.dialogs.append(dialog.message))
    page.on("pageerror", lambda exc: watched.errors.append(str(exc)))
    return watched
