"""An outbox row no event model can read is set aside; the rows after it still go out."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from services.common import subjects
from services.common.bus import Bus
from services.common.clock import ManualClock
from services.common.contracts import AccountEvent
from services.ledger import sql
from services.ledger.metrics import LedgerMetrics
from services.ledger.migrate import apply_migrations
from services.ledger.outbox import OutboxRelay, outbox_row
from tests.builders import NOW, account, approved, buy, verdict
from tests.ledger.harness import Ledger
from tests.support import eventually


async def test_undecodable_outbox_rows_do_not_block_the_relay(lg: Ledger) -> None:
    subject = subjects.ledger_account("momentum")
    # Written by an older or newer ledger, or by hand: the head of the outbox.
    await lg.db.execute(
        "INSERT INTO outbox (event_id, subject, message_type, payload) VALUES "
        "('bad:type', $1, 'NoSuchEvent', '{}'), "
        "('bad:payload', $1, 'AccountEvent', '{\"account\": 1}')",
        subject,
    )
    await lg.start_cycle("c1", 1, {"BTCUSDT": Decimal(100000)}, "momentum")
    v = verdict("c1", "momentum", lg.clock.now(), approved(buy("BTCUSDT", 10, 2)))
    await lg.send_verdict(v)

    await eventually(
        lambda: any(a.event_id == f"account:{v.verdict_id}" for a in lg.accounts),
        what="the verdict's account event, queued behind the bad rows",
    )

    # The relay's pass commits after it publishes: wait for the marks, not race them.
    async def set_aside() -> list[Any]:
        rows = await lg.db.fetch(
            "SELECT event_id, error FROM outbox WHERE failed_at IS NOT NULL ORDER BY id"
        )
        return rows if len(rows) == 2 else []

    failed = await eventually(set_aside, what="both bad rows set aside")
    assert [r["event_id"] for r in failed] == ["bad:type", "bad:payload"]
    assert "unknown message type 'NoSuchEvent'" in failed[0]["error"]
    assert "invalid AccountEvent payload" in failed[1]["error"]
    set_aside_published = (
        "SELECT count(*) FROM outbox WHERE failed_at IS NOT NULL AND published_at IS NOT NULL"
    )
    assert await lg.count(set_aside_published) == 0
    assert await lg.count("SELECT count(*) FROM outbox WHERE published_at IS NOT NULL") > 0
    assert lg.metric("arena_ledger_outbox_failed_total") == 2
    await eventually(
        lambda: lg.metric("arena_ledger_outbox_pending") == 0,
        what="nothing left pending: failed rows are not pending",
    )


async def test_a_pass_that_cannot_publish_leaves_its_rows_to_send(
    database_url: str, bus: Bus
) -> None:
    # The relay marks rows once JetStream has acknowledged them: a publish that fails must
    # leave them to send, or the events would be lost.
    conn = await asyncpg.connect(database_url)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        await apply_migrations(conn)
        event = _account_event("e1")
        # No stream takes this subject: JetStream refuses the publish.
        await sql.outbox.insert(conn, outbox_row("arena.nowhere.momentum", "e1", event))
        relay = OutboxRelay(pool, bus, ManualClock(NOW), LedgerMetrics(CollectorRegistry()))
        with pytest.raises(Exception, match=r"no response from stream"):
            await relay.publish_pending()
        unsent = "SELECT count(*) FROM outbox WHERE published_at IS NULL AND failed_at IS NULL"
        assert await conn.fetchval(unsent) == 1
        # Once the events can go out (here: a subject the stream takes), the row is sent.
        await conn.execute("UPDATE outbox SET subject = $1", subjects.ledger_account("momentum"))
        assert await relay.publish_pending() == 1
        assert await conn.fetchval(unsent) == 0
    finally:
        await pool.close()
        await conn.close()


async def test_only_the_relays_mark_commits_without_waiting_for_the_disk(
    database_url: str,
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await apply_migrations(conn)
        default = await conn.fetchval("SHOW synchronous_commit")
        assert default == "on"
        event = _account_event("e-async")
        async with conn.transaction():
            await sql.outbox.insert(
                conn, outbox_row(subjects.ledger_account("momentum"), "e-async", event)
            )
            assert await conn.fetchval("SHOW synchronous_commit") == default
        pending = await sql.outbox.pending(conn, 10)
        assert [r["event_id"] for r in pending] == ["e-async"]
        # The mark's own transaction commits with the setting off...
        during = await conn.fetchval(
            f"{sql.outbox.MARK} RETURNING current_setting('synchronous_commit')",
            [pending[0]["id"]],
            NOW,
        )
        assert during == "off"
        assert await sql.outbox.pending(conn, 10) == []
        # ...and for that transaction alone: the session's next ones wait for the disk.
        assert await conn.fetchval("SHOW synchronous_commit") == default
        await sql.outbox.mark_published(conn, [pending[0]["id"]], NOW)
        assert await conn.fetchval("SHOW synchronous_commit") == default
        # Inside a transaction the setting would hold for all of it: refused.
        async with conn.transaction():
            with pytest.raises(RuntimeError, match="outside any transaction"):
                await sql.outbox.mark_published(conn, [pending[0]["id"]], NOW)
            assert await conn.fetchval("SHOW synchronous_commit") == default
    finally:
        await conn.close()


async def test_a_pass_does_not_read_the_published_rows_again(database_url: str) -> None:
    # Published rows stay until retention prunes them, each with a dead index entry until
    # a vacuum. Read through an index that matched the pass's predicate only in part, as a
    # bitmap (the planner's choice before autovacuum has analyzed the table), the relay
    # went back to the table for every one of them on every pass: 2.4 ms in a replay.
    conn = await asyncpg.connect(database_url)
    try:
        await apply_migrations(conn)
        await conn.execute("ALTER TABLE outbox SET (autovacuum_enabled = false)")
        subject = subjects.ledger_account("momentum")
        rows = [outbox_row(subject, f"e{n}", _account_event(f"e{n}")) for n in range(2000)]
        columns = [list(column) for column in zip(*(row.values() for row in rows), strict=True)]
        await conn.execute(sql.outbox.insert_many_statement(1), *columns)
        published = await sql.outbox.pending(conn, 5000)
        await sql.outbox.mark_published(conn, [r["id"] for r in published], NOW)
        assert len(published) == 2000
        await sql.outbox.insert(conn, outbox_row(subject, "pending", _account_event("pending")))

        async def blocks_read_by_a_pass() -> int:
            plan = await conn.fetchval(
                f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql.outbox.PENDING}", 100
            )
            top = json.loads(plan)[0]["Plan"]
            return int(top["Shared Hit Blocks"]) + int(top["Shared Read Blocks"])

        await blocks_read_by_a_pass()  # the first one meets the dead entries, and marks them
        # The 2,000 published rows fill over 150 pages; the pending one is found in a few.
        assert await blocks_read_by_a_pass() < 30
    finally:
        await conn.close()


def _account_event(event_id: str) -> AccountEvent:
    return AccountEvent(event_id=event_id, account=account("momentum"), at=NOW)
