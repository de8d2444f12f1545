"""Connections to the ledger's Postgres, Supabase-pooler friendly."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg
from asyncpg.pool import PoolAcquireContext

from services.common.bus_errors import PermanentError, TransientError
from services.common.settings import Settings

log = logging.getLogger(__name__)


# A statement or a wait for a pooled connection longer than this is a stuck database:
# failing lets the message be redelivered (and the readiness probe say so) instead of
# hanging a consumer forever.
COMMAND_TIMEOUT_SECONDS = 15.0
ACQUIRE_TIMEOUT_SECONDS = 10.0


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


async def connect(
    settings: Settings,
    timeout: float = 30.0,
    *,
    command_timeout: float | None = None,
) -> asyncpg.Connection:
    """One connection (migrations, verify), retried while Postgres is starting.

    No statement timeout by default: an operator's one-shot migration or full
    verification may rightly run long, and stopping it is up to them.
    """
    dsn = _dsn(settings)
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await asyncpg.connect(
                dsn, statement_cache_size=_cache_size(settings), command_timeout=command_timeout
            )
        except Exception as exc:
            if not is_unavailable(exc) or time.monotonic() >= deadline:
                raise
            log.warning("Postgres not reachable yet (%s), retrying", exc)
            await asyncio.sleep(0.5)


async def create_pool(
    settings: Settings,
    timeout: float | None = 30.0,
    *,
    command_timeout: float = COMMAND_TIMEOUT_SECONDS,
    max_size: int = 8,
) -> asyncpg.Pool:
    """The service's pool; every statement on it fails after ``command_timeout`` seconds.

    Retried for ``timeout`` seconds while Postgres is unreachable (None: for as long as it
    takes, what the service does: it reports not ready meanwhile instead of exiting).
    """
    dsn = _dsn(settings)
    deadline = None if timeout is None else time.monotonic() + timeout
    attempt = 0
    while True:
        attempt += 1
        try:
            return await asyncpg.create_pool(
                dsn,
                min_size=1,
                max_size=max_size,
                statement_cache_size=_cache_size(settings),
                command_timeout=command_timeout,
                reset=_keep_session,
            )
        except Exception as exc:
            if not is_unavailable(exc) or (deadline is not None and time.monotonic() >= deadline):
                raise
            if attempt == 1 or attempt % 20 == 0:
                log.warning("Postgres not reachable (%s), still trying (attempt %d)", exc, attempt)
            await asyncio.sleep(0.5)


async def _keep_session(_: asyncpg.Connection) -> None:
    """What a connection needs on its way back to the pool: nothing more than asyncpg's own
    clean-up (an open transaction rolled back, listeners removed).

    The ledger keeps no session state (no session-level locks, cursors, LISTEN or SET; its
    advisory lock is transaction-scoped), so the default reset statement would be a round
    trip to Postgres on every release for nothing.
    """


# What Postgres (or the way to it) raises while it is down, restarting, overloaded or
# cutting connections: the statement may well succeed later.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,  # refused or reset sockets, and every timeout (acquire, command)
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,  # "connection is closed" after the server went away
    asyncpg.exceptions.OperatorInterventionError,  # shutdown, cannot connect now, cancelled
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
    asyncpg.exceptions.TransactionRollbackError,  # serialization failure, deadlock
)


def is_unavailable(error: BaseException) -> bool:
    """True when ``error`` says the database is unavailable for now, not that it refused."""
    if isinstance(error, _UNAVAILABLE):
        return True
    # ALTER DATABASE ... ALLOW_CONNECTIONS false (maintenance): the same, for a while.
    return isinstance(
        error, asyncpg.exceptions.ObjectNotInPrerequisiteStateError
    ) and "not currently accepting connections" in str(error)


@contextmanager
def unavailable_is_transient() -> Iterator[None]:
    """Postgres being unavailable becomes a ``TransientError`` (try again later); bus errors
    and every other failure pass through unchanged."""
    try:
        yield
    except (TransientError, PermanentError):
        raise
    except Exception as exc:
        if is_unavailable(exc):
            raise TransientError(f"Postgres unavailable: {exc!r}") from exc
        raise


def acquire(pool: asyncpg.Pool, timeout: float = ACQUIRE_TIMEOUT_SECONDS) -> PoolAcquireContext:
    """``pool.acquire`` that raises ``TimeoutError`` rather than waiting forever."""
    return pool.acquire(timeout=timeout)
