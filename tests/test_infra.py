"""The test infrastructure itself: a real Postgres, a database per test."""

from __future__ import annotations

import asyncpg


async def test_each_test_gets_its_own_empty_database(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        tables = await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        )
        version = await conn.fetchval("SHOW server_version_num")
    finally:
        await conn.close()
    assert tables == 0
    assert int(version) >= 150000
