"""Numbered SQL migrations (``migrations/NNNN_*.sql``), applied once each, in order.

Each file runs in its own transaction that first takes a transaction-scoped advisory
lock, so two ledgers starting together apply each file exactly once; a transaction-scoped
lock (rather than a session one) also holds on a transaction-mode pooler.

``schema_migrations`` keeps each applied file's sha256. An applied file whose content
changed since is an error (:class:`MigrationChanged`) before anything is applied: the
database was built from the old text, so the change would never take effect. Rows from
before the checksum column (``0010``) get the hash of the file as it is at the first
start that finds them empty.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Any constant every ledger agrees on: ASCII "LEDGMIGR".
LOCK_KEY = 0x4C454447_4D494752

_BOOTSTRAP = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text        PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
# Read through to_jsonb so the same statement works before the sha256 column exists.
_RECORDED = "SELECT version, to_jsonb(m) ->> 'sha256' AS sha256 FROM schema_migrations m"
_HAS_CHECKSUMS = """
SELECT EXISTS (
    SELECT 1 FROM information_schema.columns
    WHERE table_schema = current_schema() AND table_name = 'schema_migrations'
      AND column_name = 'sha256'
)
"""


class MigrationChanged(RuntimeError):
    """Applied migration files whose content no longer matches what was applied."""

    def __init__(self, changed: list[tuple[str, str, str]]) -> None:
        self.changed = changed
        lines = [
            f"{name}: applied with sha256 {recorded}, the file now has sha256 {now}"
            for name, recorded, now in changed
        ]
        super().__init__(
            "applied migration(s) edited since: "
            + "; ".join(lines)
            + " (restore the applied text and put the change in a new migration)"
        )


def migration_files(directory: Path = MIGRATIONS_DIR) -> list[Path]:
    files = sorted(directory.glob("[0-9][0-9][0-9][0-9]_*.sql"))
    versions = [f.name[:4] for f in files]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a number in {directory}: {versions}")
    return files


def checksum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def check_migrations(conn: asyncpg.Connection, directory: Path = MIGRATIONS_DIR) -> None:
    """Raise :class:`MigrationChanged` when an applied file differs from what was applied."""
    recorded = {row["version"]: row["sha256"] for row in await conn.fetch(_RECORDED)}
    changed = [
        (path.name, recorded[path.stem], now)
        for path in migration_files(directory)
        if recorded.get(path.stem) is not None and (now := checksum(path)) != recorded[path.stem]
    ]
    if changed:
        raise MigrationChanged(changed)


async def apply_migrations(conn: asyncpg.Connection, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply every migration not applied yet; return the names of those applied now.

    Raises :class:`MigrationChanged` (and applies nothing) when an applied file was edited.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
        await conn.execute(_BOOTSTRAP)
        await check_migrations(conn, directory)
    applied_now: list[str] = []
    for path in migration_files(directory):
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
            done = await conn.fetchval(
                "SELECT 1 FROM schema_migrations WHERE version = $1", path.stem
            )
            if done:
                continue
            await conn.execute(path.read_text(encoding="utf-8"))
            await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", path.stem)
        log.info("applied migration %s", path.name)
        applied_now.append(path.stem)
    await _record_checksums(conn, directory)
    return applied_now


async def _record_checksums(conn: asyncpg.Connection, directory: Path) -> None:
    """Give every applied migration without a sha256 the hash of its file as it is now."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
        if not await conn.fetchval(_HAS_CHECKSUMS):
            return
        await conn.executemany(
            "UPDATE schema_migrations SET sha256 = $2 WHERE version = $1 AND sha256 IS NULL",
            [(path.stem, checksum(path)) for path in migration_files(directory)],
        )
