"""Migrations against a real Postgres: idempotent, race-safe, checked by checksum, and
SPEC.md's columns exist."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from services.ledger.migrate import (
    MIGRATIONS_DIR,
    MigrationChanged,
    apply_migrations,
    checksum,
    migration_files,
)

# The first migration that records checksums: databases migrated before it have none.
CHECKSUMS_FROM = "0010"

EXPECTED_COLUMNS = {
    "llm_accounts": {
        "llm_id", "provider", "model_name", "display_name", "balance", "margin_used",
        "total_pnl", "realized_pnl", "unrealized_pnl", "total_fees", "total_trades",
        "winning_trades", "losing_trades", "open_positions", "is_active", "initial_balance",
        "created_at", "updated_at",
    },
    "positions": {
        "id", "llm_id", "symbol", "side", "entry_price", "current_price", "quantity",
        "leverage", "margin", "unrealized_pnl", "liquidation_price", "stop_loss", "take_profit",
        "status", "opened_at", "closed_at", "cycle_id", "entry_fee",
    },
    "trades": {
        "id", "llm_id", "position_id", "symbol", "action", "side", "entry_price", "exit_price",
        "quantity", "realized_pnl", "pnl_percentage", "fees", "exit_reason", "executed_at",
        "closed_at", "cycle_id",
    },
    "market_data": {
        "id", "symbol", "price", "mark_price", "volume_24h", "price_change_24h", "high_24h",
        "low_24h", "funding_rate", "data_timestamp", "cycle_id",
    },
    "rejected_decisions": {
        "id", "llm_id", "symbol", "decision", "reasoning", "rejection_reason", "confidence",
        "created_at", "decision_id", "cycle_id", "reason_codes",
    },
    "llm_api_calls": {
        "id", "llm_id", "provider", "model", "response_time_ms", "prompt_tokens",
        "completion_tokens", "estimated_cost", "success", "called_at", "call_id", "cycle_id",
        "error",
    },
    "decisions": {
        "decision_id", "cycle_id", "llm_id", "actions", "reasoning", "model", "prompt_sha256",
        "error", "decided_at", "results", "applied_at",
    },
    "cycles": {
        "cycle_id", "sequence", "started_at", "decision_deadline", "expected_agents", "status",
        "completed_at", "duration_seconds",
    },
    "processed_messages": {"msg_id", "consumer", "processed_at"},
    "outbox": {
        "id", "event_id", "subject", "payload", "created_at", "published_at", "failed_at", "error",
    },
}  # fmt: skip

MONEY_COLUMNS = {
    ("llm_accounts", "balance"),
    ("positions", "entry_price"),
    ("positions", "quantity"),
    ("trades", "fees"),
    ("market_data", "price"),
    ("llm_api_calls", "estimated_cost"),
}


async def _columns(conn: asyncpg.Connection) -> dict[str, dict[str, str]]:
    rows = await conn.fetch(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'public'"
    )
    tables: dict[str, dict[str, str]] = {}
    for row in rows:
        tables.setdefault(row["table_name"], {})[row["column_name"]] = row["data_type"]
    return tables


async def test_migrations_apply_once_and_rerun_safely(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        first = await apply_migrations(conn)
        assert first == [f.stem for f in migration_files()]
        assert await apply_migrations(conn) == []
        versions = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
        assert [r["version"] for r in versions] == first

        tables = await _columns(conn)
        for table, columns in EXPECTED_COLUMNS.items():
            assert columns <= set(tables.get(table, {})), f"{table} lacks columns"
        for table, column in MONEY_COLUMNS:
            assert tables[table][column] == "numeric"
        assert tables["positions"]["opened_at"] == "timestamp with time zone"
    finally:
        await conn.close()


async def test_two_ledgers_migrating_at_once_apply_each_file_once(database_url: str) -> None:
    conns = [await asyncpg.connect(database_url) for _ in range(3)]
    try:
        results = await asyncio.gather(*(apply_migrations(c) for c in conns))
        applied = sorted(name for result in results for name in result)
        assert applied == [f.stem for f in migration_files()]
    finally:
        for conn in conns:
            await conn.close()


async def test_one_open_position_per_agent_and_symbol(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await apply_migrations(conn)
        await conn.execute(
            "INSERT INTO llm_accounts (llm_id, provider, model_name, display_name, balance, "
            "initial_balance) VALUES ('a', 'baseline', 'm', 'A', 100, 100)"
        )
        insert = (
            "INSERT INTO positions (llm_id, symbol, side, entry_price, current_price, quantity, "
            "leverage, margin, status, opened_at, entry_fee) "
            "VALUES ('a', 'BTCUSDT', 'LONG', 1, 1, 1, 1, 1, $1, now(), 0)"
        )
        await conn.execute(insert, "OPEN")
        await conn.execute(insert, "CLOSED")
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(insert, "OPEN")
    finally:
        await conn.close()


def _copy_migrations(target: Path, before: str | None = None) -> Path:
    """The project's migration files in ``target`` (only those numbered below ``before``)."""
    target.mkdir()
    for path in migration_files():
        if before is None or path.name[:4] < before:
            shutil.copy(path, target / path.name)
    return target


async def _recorded(conn: asyncpg.Connection) -> dict[str, str | None]:
    rows = await conn.fetch("SELECT version, sha256 FROM schema_migrations")
    return {row["version"]: row["sha256"] for row in rows}


async def test_every_applied_migration_records_its_files_sha256(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await apply_migrations(conn)
        assert await _recorded(conn) == {f.stem: checksum(f) for f in migration_files()}
        # Unchanged files: a second start is fine and applies nothing.
        assert await apply_migrations(conn) == []
    finally:
        await conn.close()


async def test_an_edited_applied_migration_is_an_error_naming_the_file_and_hashes(
    database_url: str, tmp_path: Path
) -> None:
    directory = _copy_migrations(tmp_path / "migrations")
    conn = await asyncpg.connect(database_url)
    try:
        await apply_migrations(conn, directory)
        edited = migration_files(directory)[2]
        before = checksum(edited)
        edited.write_text(edited.read_text() + "\nCREATE INDEX late ON outbox (created_at);\n")
        (directory / "0099_next.sql").write_text("CREATE TABLE next_one (id int);\n")

        with pytest.raises(MigrationChanged) as caught:
            await apply_migrations(conn, directory)
        message = str(caught.value)
        assert edited.name in message
        assert before in message and checksum(edited) in message
        assert caught.value.changed == [(edited.name, before, checksum(edited))]
        # Nothing was applied past the error, and the record is untouched.
        assert "0099_next" not in await _recorded(conn)
        assert (await _recorded(conn))[edited.stem] == before
    finally:
        await conn.close()


async def test_a_database_from_before_checksums_is_upgraded_and_then_checked(
    database_url: str, tmp_path: Path
) -> None:
    older = _copy_migrations(tmp_path / "older", before=CHECKSUMS_FROM)
    conn = await asyncpg.connect(database_url)
    try:
        # Migrated by a ledger that stored only the version.
        applied = await apply_migrations(conn, older)
        assert applied and all(name < CHECKSUMS_FROM for name in applied)
        columns = await conn.fetch(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'schema_migrations'"
        )
        assert {r["column_name"] for r in columns} == {"version", "applied_at"}
        await conn.execute(
            "INSERT INTO llm_accounts (llm_id, provider, model_name, display_name, balance, "
            "initial_balance) VALUES ('a', 'baseline', 'm', 'A', 100, 100)"
        )

        # The first start after the upgrade adds the column and fills every row.
        newer = await apply_migrations(conn)
        assert newer == [f.stem for f in migration_files() if f.name[:4] >= CHECKSUMS_FROM]
        assert await _recorded(conn) == {f.stem: checksum(f) for f in migration_files()}
        assert await conn.fetchval("SELECT balance FROM llm_accounts WHERE llm_id = 'a'") == 100
        assert await apply_migrations(conn) == []

        # From then on an edit is found.
        await conn.execute(
            "UPDATE schema_migrations SET sha256 = $1 WHERE version = $2",
            "0" * 64,
            migration_files()[0].stem,
        )
        with pytest.raises(MigrationChanged, match=migration_files()[0].name):
            await apply_migrations(conn)
    finally:
        await conn.close()


async def test_the_migrate_command_refuses_an_edited_migration(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await apply_migrations(conn)
        first = migration_files(MIGRATIONS_DIR)[0]
        # As if the file had been edited after it was applied: the record no longer matches.
        await conn.execute(
            "UPDATE schema_migrations SET sha256 = $1 WHERE version = $2", "f" * 64, first.stem
        )
    finally:
        await conn.close()
    env = {**os.environ, "DATABASE_URL": database_url}
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "services.ledger", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert first.name in done.stderr
    assert "f" * 64 in done.stderr and checksum(first) in done.stderr
