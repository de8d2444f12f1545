"""Migrations against a real Postgres: idempotent, race-safe, and SPEC.md's columns exist."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from services.ledger.migrate import apply_migrations, migration_files

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
