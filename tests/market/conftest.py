"""Fixtures of the market tests: an observer of the market and a market to start again."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from services.common.settings import Settings
from tests.market.observer import MANUAL, Observer, Restartable, observing


@pytest.fixture
def market(make_settings: Callable[..., Settings]) -> Restartable:
    return Restartable(make_settings(**MANUAL))


@pytest.fixture
async def obs(nats_url: str) -> AsyncIterator[Observer]:
    async with observing(nats_url) as observer:
        yield observer
