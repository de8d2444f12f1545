"""Fixtures of the ledger tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from services.common.settings import Settings
from tests.ledger.harness import Ledger, ledger


@pytest.fixture
async def lg(make_settings: Callable[..., Settings], database_url: str) -> AsyncIterator[Ledger]:
    """The ledger in-process with the test lineup, on this test's NATS and database."""
    async with ledger(make_settings, database_url) as harness:
        yield harness
