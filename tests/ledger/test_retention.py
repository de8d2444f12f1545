"""Retention on real Postgres: bookkeeping past its horizon goes, the rest stays, a message
still in the stream is still recognised, and a pass that fails is retried."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlsplit

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from services.common import subjects
from services.common.bus import Delivery
from services.common.clock import ManualClock
from services.common.lineup import load_lineup
from services.common.settings import Settings
from services.ledger import sql
from services.ledger.database import create_pool
from services.ledger.metrics import LedgerMetrics
from services.ledger.migrate import apply_migrations
from services.ledger.retention import Retention, RetentionPolicy
from tests.builders import llm_call
from tests.ledger.harness import LINEUP, Ledger, ledger
from tests.support import eventually

T = datetime(2025, 6, 1, tzinfo=UTC)
REMOVED = "arena_ledger_retention_removed_total"
FAILURES = "arena_ledger_retention_failures_total"


@dataclass
class Books:
    pool: asyncpg.Pool
    db: asyncpg.Connection
    clock: ManualClock
    registry: CollectorRegistry
    metrics: LedgerMetrics

    def retention(self, policy: RetentionPolicy) -> Retention:
        return Retention(self.pool, self.clock, self.metrics, policy)

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


@contextlib.asynccontextmanager
async def books(make_settings: Callable[..., Settings], database_url: str) -> AsyncIterator[Books]:
    """A migrated ledger database with the test line-up's accounts, and no service."""
    settings = make_settings(DATABASE_URL=database_url, ARENA_AGENTS_FILE=str(LINEUP))
    db = await asyncpg.connect(database_url)
    await apply_migrations(db)
    async with db.transaction():
        await sql.accounts.upsert_accounts(db, load_lineup(LINEUP), Decimal(100), T)
    pool = await create_pool(settings)
    try:
        registry = CollectorRegistry()
        yield Books(pool, db, ManualClock(T), registry, LedgerMetrics(registry))
    finally:
        await pool.close()
        await db.close()


async def _ids(db: asyncpg.Connection, sql: str) -> set[str]:
    return {str(r[0]) for r in await db.fetch(sql)}


async def test_rows_past_their_horizons_go_and_recent_or_unsent_rows_stay(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    async with books(make_settings, database_url) as b:
        db = b.db
        day = timedelta(days=1)
        # Postgres stamps processed_at; the horizon is 2 x 7 days in the stream, 30 in the
        # dead letters and a day's margin.
        horizon = 45 * day
        await db.executemany(
            "INSERT INTO processed_messages (msg_id, consumer, processed_at) "
            "VALUES ($1, 'ledger-ticks', now() - $2::interval)",
            [
                ("old-1", horizon + timedelta(hours=1)),
                ("old-2", horizon + 5 * day),
                ("old-3", 400 * day),
                ("within-1", 8 * day),
                ("within-2", horizon - timedelta(hours=1)),
            ],
        )
        await db.executemany(
            "INSERT INTO applied_ticks (tick_id, applied_at) VALUES ($1, $2)",
            [("t-old", T - horizon - day), ("t-recent", T - 30 * day)],
        )
        await db.executemany(
            "INSERT INTO outbox (event_id, subject, message_type, payload, created_at, "
            "published_at, failed_at) VALUES ($1, 'arena.x', 'AccountEvent', '{}', $2, $3, $4)",
            [
                ("sent-old", T - 3 * day, T - 2 * day, None),
                ("sent-recent", T - 3 * day, T - timedelta(hours=1), None),
                ("unsent-old", T - 30 * day, None, None),
                ("failed-old", T - 30 * day, None, T - 30 * day),
            ],
        )
        await db.execute(
            "INSERT INTO symbol_marks (symbol, marked_at, mark_price) VALUES ('BTCUSDT', $1, 1)", T
        )
        await db.executemany(
            "INSERT INTO market_data (symbol, price, data_timestamp, cycle_id, stored_at) "
            "VALUES ($1, 1, $2, $3, now() - $4::interval)",
            [
                ("BTCUSDT", T - 40 * day, "c-old-1", 50 * day),
                ("BTCUSDT", T - 35 * day, "c-old-2", 50 * day),
                # Old market time, but stored a day ago (a replay): a copy of its
                # snapshot may still come.
                ("BTCUSDT", T - 35 * day, "c-replayed", day),
                ("BTCUSDT", T - day, "c-recent", 50 * day),
                # DOGE's newest row, however old: its funding rate is the one charged.
                ("DOGEUSDT", T - 40 * day, "c-old-1", 50 * day),
            ],
        )

        # Batches of two: every table takes several statements.
        policy = RetentionPolicy(batch_size=2, market_data=timedelta(days=30))
        removed = await b.retention(policy).prune_once()

        assert removed == {
            "processed_messages": 3,
            "applied_ticks": 1,
            "outbox": 1,
            "market_data": 2,
            "equity_snapshots": 0,
        }
        assert await _ids(db, "SELECT msg_id FROM processed_messages") == {"within-1", "within-2"}
        assert await _ids(db, "SELECT tick_id FROM applied_ticks") == {"t-recent"}
        assert await _ids(db, "SELECT event_id FROM outbox") == {
            "sent-recent",
            "unsent-old",
            "failed-old",
        }
        assert await _ids(db, "SELECT symbol || ':' || cycle_id FROM market_data") == {
            "BTCUSDT:c-replayed",
            "BTCUSDT:c-recent",
            "DOGEUSDT:c-old-1",
        }
        for table, n in removed.items():
            assert b.metric(REMOVED, table=table) == n

        assert set((await b.retention(policy).prune_once()).values()) == {0}


async def test_a_zero_horizon_keeps_forever(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    policy = RetentionPolicy.from_settings(
        make_settings(
            ARENA_RETENTION_OUTBOX_HOURS=0,
            ARENA_RETENTION_MARKET_DATA_DAYS=0,
            ARENA_RETENTION_EQUITY_FULL_DAYS=0,
        )
    )
    assert (policy.outbox, policy.market_data, policy.equity_full) == (None, None, None)
    async with books(make_settings, database_url) as b:
        await b.db.execute(
            "INSERT INTO outbox (event_id, subject, message_type, payload, published_at) "
            "VALUES ('sent', 'arena.x', 'AccountEvent', '{}', $1)",
            T - timedelta(days=400),
        )
        await b.db.execute(
            "INSERT INTO market_data (symbol, price, data_timestamp, cycle_id, stored_at) "
            "VALUES ('BTCUSDT', 1, $1, 'c0', $1), ('BTCUSDT', 1, $2, 'c1', $2)",
            T - timedelta(days=400),
            T,
        )
        await b.db.execute(
            "INSERT INTO symbol_marks (symbol, marked_at, mark_price) VALUES ('BTCUSDT', $1, 1)", T
        )
        removed = await b.retention(policy).prune_once()
        assert removed == {"processed_messages": 0, "applied_ticks": 0}
        assert await b.db.fetchval("SELECT count(*) FROM outbox") == 1
        assert await b.db.fetchval("SELECT count(*) FROM market_data") == 2


def test_the_dedup_horizon_is_the_stream_max_age_plus_the_margin(
    make_settings: Callable[..., Settings],
) -> None:
    default = RetentionPolicy.from_settings(make_settings())
    # Twice the stream's 7 days (first publish, then a re-drive), the dead letters' 30, a day.
    assert default.dedup == timedelta(days=45)
    assert default == RetentionPolicy()
    assert default.interval == timedelta(minutes=10)
    assert default.batch_size == 5000
    assert (default.outbox, default.market_data) == (timedelta(hours=24), None)
    assert (default.equity_full, default.equity_bucket) == (timedelta(days=7), timedelta(hours=1))
    wider = RetentionPolicy.from_settings(make_settings(ARENA_RETENTION_DEDUP_MARGIN_HOURS=48))
    assert wider.dedup == timedelta(days=46)
    shorter = RetentionPolicy.from_settings(
        make_settings(ARENA_STREAM_MAX_AGE_SECONDS=86400, ARENA_DLQ_MAX_AGE_SECONDS=3 * 86400)
    )
    assert shorter.dedup == timedelta(days=2 + 3 + 1)
    off = RetentionPolicy.from_settings(make_settings(ARENA_RETENTION_INTERVAL_MINUTES=0))
    assert off == dataclasses.replace(default, interval=None)
    with pytest.raises(ValueError, match="ARENA_RETENTION_DEDUP_MARGIN_HOURS"):
        make_settings(ARENA_RETENTION_DEDUP_MARGIN_HOURS=0)


async def test_a_message_redelivered_within_the_horizon_is_still_a_duplicate(lg: Ledger) -> None:
    call = llm_call("momentum", "call-1", lg.clock.now(), model="m")
    subject = subjects.llm_call("momentum")
    await lg.publish(subject, call, call.call_id)
    await eventually(lambda: lg.count("SELECT count(*) FROM llm_api_calls"), what="stored")
    msg_id = await lg.db.fetchval(
        "SELECT msg_id FROM processed_messages WHERE consumer = 'ledger-llm-calls'"
    )
    # Forty days on, a dead letter of it (another consumer's) may still be re-driven
    # under its original id: the id must stay.
    await lg.db.execute("UPDATE processed_messages SET processed_at = now() - interval '40d'")
    await lg.db.execute(
        "INSERT INTO processed_messages (msg_id, consumer, processed_at) "
        "VALUES ('expired', 'ledger-llm-calls', now() - interval '46d')"
    )

    removed = await lg.service.retention.prune_once()

    assert removed["processed_messages"] == 1
    assert await lg.count("SELECT count(*) FROM processed_messages WHERE msg_id = $1", msg_id)
    duplicates = "arena_ledger_duplicates_skipped_total"
    before = lg.metric(duplicates, consumer="ledger-llm-calls")
    # It comes back (re-driven, or an ack lost): the consumer's handler sees the same id.
    again = Delivery(subject=subject, msg_id=msg_id, stream_sequence=1, num_delivered=2)
    assert await lg.service._on_llm_calls([(call, again)]) == {}
    assert lg.metric(duplicates, consumer="ledger-llm-calls") == before + 1


async def test_the_ledger_prunes_every_interval_and_logs_what_it_removed(
    make_settings: Callable[..., Settings], database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="services.ledger.retention")
    # 0.005 minutes: a pass every 0.3 s.
    async with ledger(make_settings, database_url, ARENA_RETENTION_INTERVAL_MINUTES=0.005) as lg:
        await lg.db.execute(
            "INSERT INTO processed_messages (msg_id, consumer, processed_at) "
            "SELECT 'old-' || n, 'ledger-ticks', now() - interval '50d' "
            "FROM generate_series(1, 7) AS n"
        )

        def logged() -> list[logging.LogRecord]:
            return [r for r in caplog.records if r.getMessage().startswith("retention removed")]

        # The log line ends the pass: by then every count is in.
        await eventually(logged, what="a pass that removed rows, logged")
        assert "7 from processed_messages" in logged()[0].getMessage()
        assert logged()[0].removed["processed_messages"] == 7  # type: ignore[attr-defined]
        assert lg.metric(REMOVED, table="processed_messages") == 7
        assert not await lg.count(
            "SELECT count(*) FROM processed_messages WHERE msg_id LIKE 'old-%'"
        )


async def test_a_pass_fails_while_postgres_refuses_and_the_next_one_catches_up(
    make_settings: Callable[..., Settings],
    database_url: str,
    postgres_admin_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = urlsplit(database_url).path.lstrip("/")
    async with books(make_settings, database_url) as b:
        await b.db.execute(
            "INSERT INTO processed_messages (msg_id, consumer, processed_at) "
            "VALUES ('old', 'ledger-ticks', now() - interval '50d')"
        )
        await b.db.close()
        admin = await asyncpg.connect(postgres_admin_url)
        retention = b.retention(RetentionPolicy(interval=timedelta(seconds=0.1)))
        task = asyncio.create_task(retention.run())
        try:
            # Postgres goes away for this database: every connection cut, none accepted.
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
            )
            await eventually(lambda: b.metric(FAILURES) >= 2, what="passes failing")
            assert not task.done()
            assert any("retention pass failed" in r.getMessage() for r in caplog.records)

            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            await eventually(
                lambda: b.metric(REMOVED, table="processed_messages") == 1,
                what="the next pass after Postgres is back",
            )
        finally:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            await admin.close()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        db = await asyncpg.connect(database_url)
        try:
            assert await db.fetchval("SELECT count(*) FROM processed_messages") == 0
        finally:
            await db.close()
