"""Connections to the ledger's Postgres, Supabase-pooler friendly."""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg

from services.common.settings import Settings

log = logging.getLogger(__name__)


class DatabaseNotConfigured(RuntimeError):
    pass


def _dsn(settings: Settings) -> str:
    if not settings.database_url:
        raise DatabaseNotConfigured("DATABASE_URL is not set: the ledger needs Postgres")
    return settings.database_url


def _cache_size(settings: Settings) -> int:
    # A transaction-mode pooler (PgBouncer, Supabase) hands each transaction a different
    # server connection, so named prepared statements would not be found there.
    return 0 if settings.uses_pooler else 100


async def connect(settings: Settings, timeout: float = 30.0) -> asyncpg.Connection:
    """One connection (migrations, verify), retried while Postgres is starting."""
    dsn = _dsn(settings)
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await asyncpg.connect(dsn, statement_cache_size=_cache_size(settings))
        except (OSError, asyncpg.CannotConnectNowError) as exc:
            if time.monotonic() >= deadline:
                raise
            log.warning("Postgres not reachable yet (%s), retrying", exc)
            await asyncio.sleep(0.5)


async def create_pool(settings: Settings, timeout: float = 30.0) -> asyncpg.Pool:
    dsn = _dsn(settings)
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await asyncpg.create_pool(
                dsn, min_size=1, max_size=8, statement_cache_size=_cache_size(settings)
            )
        except (OSError, asyncpg.CannotConnectNowError) as exc:
            if time.monotonic() >= deadline:
                raise
            log.warning("Postgres not reachable yet (%s), retrying", exc)
            await asyncio.sleep(0.5)
