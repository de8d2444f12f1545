"""``outbox``: events written in an effect's transaction, published afterwards."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from asyncpg import Connection


@dataclass(frozen=True)
class OutboxRow:
    """An event as the outbox stores it: its id, subject, model name and JSON."""

    event_id: str
    subject: str
    message_type: str
    payload: str

    def values(self) -> tuple[str, str, str, str]:
        return (self.event_id, self.subject, self.message_type, self.payload)


def insert_statement(first: int, where: str = "true") -> str:
    """The insert of one :class:`OutboxRow` whose values are parameters ``$first`` to
    ``$first+3``, when ``where`` holds (to run inside another statement)."""
    event_id, subject, message_type, payload = (f"${first + n}" for n in range(4))
    return (
        "INSERT INTO outbox (event_id, subject, message_type, payload) "
        f"SELECT {event_id}, {subject}, {message_type}, {payload}::jsonb WHERE {where}"
    )


def insert_many_statement(first: int) -> str:
    """The insert of :class:`OutboxRow` values given as four arrays (event ids, subjects,
    model names, JSON), parameters ``$first`` to ``$first+3``, in their order."""
    arrays = ", ".join(f"${first + n}::text[]" for n in range(4))
    return (
        "INSERT INTO outbox (event_id, subject, message_type, payload) "
        f"SELECT i, s, t, p::jsonb FROM unnest({arrays}) AS o (i, s, t, p)"
    )


async def insert(conn: Connection, row: OutboxRow) -> None:
    await conn.execute(insert_statement(1), *row.values())


# Up to $1 rows neither published nor set aside, in id order, read through the index on
# exactly that predicate (outbox_pending).
PENDING = (
    "SELECT id, event_id, subject, message_type, payload::text AS payload FROM outbox "
    "WHERE published_at IS NULL AND failed_at IS NULL ORDER BY id LIMIT $1"
)

# Marks the rows of ids $1 published at $2, in a transaction of its own that commits
# without waiting for the disk (the setting is local to it).
MARK = (
    "UPDATE outbox SET published_at = $2 "
    "FROM (SELECT set_config('synchronous_commit', 'off', true)) AS relaxed "
    "WHERE id = ANY($1::bigint[])"
)


async def pending(conn: Connection, batch: int) -> list[asyncpg.Record]:
    """Up to ``batch`` rows to publish, in id order (no lock: see :func:`mark_published`)."""
    return list(await conn.fetch(PENDING, batch))


async def mark_published(conn: Connection, ids: Sequence[int], now: datetime) -> None:
    """Mark rows published at ``now``, once their events are acknowledged by JetStream.

    Outside the caller's transactions, in one statement whose commit does not wait for its
    WAL to reach the disk (``synchronous_commit`` off for it alone): a mark lost to a
    crash, of Postgres or of the relay between its publish and its mark, only publishes
    the events again, and their ids make the copies harmless (JetStream's duplicate
    window, the consumers' own records). For the same reason two relays (a ledger
    replaced while the old one still runs) may both publish a row. Every write that
    matters is committed synchronously, which also flushes the marks written before it."""
    if conn.is_in_transaction():
        # Inside, the setting would hold for the caller's whole transaction.
        raise RuntimeError("the outbox's mark commits on its own, outside any transaction")
    await conn.execute(MARK, list(ids), now)


async def mark_failed(conn: Connection, outbox_id: int, now: datetime, error: str) -> None:
    """Set a row aside: never published."""
    await conn.execute(
        "UPDATE outbox SET published_at = NULL, failed_at = $2, error = $3 WHERE id = $1",
        outbox_id,
        now,
        error,
    )


async def pending_count(conn: Connection) -> int:
    """Rows neither published nor set aside."""
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM outbox WHERE published_at IS NULL AND failed_at IS NULL"
        )
    )


# Deletes one batch of rows published before $1; $2 is the batch size.
PRUNE = (
    "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox "
    "WHERE published_at < $1 ORDER BY published_at LIMIT $2)"
)
