"""Postgres access never hangs: statements and pool waits time out (real Postgres)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest

from services.common.settings import Settings
from services.ledger.database import acquire, create_pool


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(DATABASE_URL=database_url)


@contextlib.asynccontextmanager
async def _pool(settings: Settings, **options: Any) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(settings, **options)
    try:
        yield pool
    finally:
        await pool.close()


async def test_a_statement_longer_than_the_command_timeout_fails(settings: Settings) -> None:
    async with _pool(settings, command_timeout=0.2) as pool, acquire(pool) as conn:
        with pytest.raises(TimeoutError):
            await conn.execute("SELECT pg_sleep(30)")
        # The connection is usable again once the statement is cancelled.
        assert await conn.fetchval("SELECT 1") == 1


async def test_waiting_for_a_pooled_connection_times_out(settings: Settings) -> None:
    async with _pool(settings, max_size=1) as pool, acquire(pool) as held:
        with pytest.raises(TimeoutError):
            async with acquire(pool, timeout=0.2):
                pass
        assert await held.fetchval("SELECT 1") == 1
