"""``outbox``: events written in an effect's transaction, published afterwards."""

from __future__ import annotations

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


# Marks up to $1 unsent rows published at $2 and returns them. Reads the index on exactly
# its predicate (outbox_pending), in id order. SKIP LOCKED: a second ledger replica relays
# other rows instead of waiting.
TAKE = (
    "UPDATE outbox SET published_at = $2 "
    "FROM (SELECT set_config('synchronous_commit', 'off', true)) AS relaxed "
    "WHERE id IN (SELECT id FROM outbox "
    "WHERE published_at IS NULL AND failed_at IS NULL ORDER BY id LIMIT $1 "
    "FOR UPDATE SKIP LOCKED) "
    "RETURNING id, event_id, subject, message_type, payload::text AS payload"
)


async def take_pending(conn: Connection, batch: int, now: datetime) -> list[asyncpg.Record]:
    """Mark up to ``batch`` unsent rows published at ``now`` (the pass's time: they are
    published before it commits) and return them, in id order, in one statement: the
    caller publishes them before its transaction commits, and rolls back, leaving them
    unsent, when it cannot.

    The transaction then commits without waiting for its WAL to reach the disk
    (``synchronous_commit`` off for it alone): a mark lost to a crash of Postgres only
    publishes its events again, and their ids make the copies harmless (JetStream's
    duplicate window, the consumers' own records). Every write that matters is
    committed synchronously, which also flushes the marks written before it."""
    records = await conn.fetch(TAKE, batch, now)
    return sorted(records, key=lambda r: r["id"])


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
