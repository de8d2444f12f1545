"""Fixtures of the gateway tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.gateway.harness import Gateway, MakeSettings, gateway


@pytest.fixture
async def gw(nats_url: str, make_settings: MakeSettings) -> AsyncIterator[Gateway]:
    """The gateway, its settings the tests' own, before the stand-in ledger and market."""
    async with gateway(nats_url, make_settings) as running_gateway:
        yield running_gateway
