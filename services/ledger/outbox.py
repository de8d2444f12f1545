"""The outbox: events are written in the effect's transaction and published afterwards.

``enqueue`` runs inside the caller's transaction; ``OutboxRelay`` reads unsent rows in id
order, publishes them, then marks them sent (two round trips a pass, no transaction held
open across the publish). A crash between commit and publish only delays an event: the
next relay pass (or the next start) publishes it, and JetStream drops the copy if the
crash came after the publish but before the mark (same ``Nats-Msg-Id``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
from pydantic import ValidationError

from services.common import channels
from services.common.bus import Bus
from services.common.clock import Clock
from services.common.contracts import Message
from services.ledger import sql
from services.ledger.database import acquire
from services.ledger.metrics import LedgerMetrics

log = logging.getLogger(__name__)

_MODELS: dict[str, type[Message]] = {e.message.__name__: e.message for e in channels.EVENTS}


def outbox_row(subject: str, event_id: str, message: Message) -> sql.outbox.OutboxRow:
    """``message`` as the outbox stores it (an event model, else TypeError)."""
    name = type(message).__name__
    if name not in _MODELS:
        raise TypeError(f"{name} is not an event model")
    return sql.outbox.OutboxRow(event_id, subject, name, message.model_dump_json())


async def enqueue(conn: asyncpg.Connection, subject: str, event_id: str, message: Message) -> None:
    """Write one event to publish once the surrounding transaction commits."""
    await sql.outbox.insert(conn, outbox_row(subject, event_id, message))


class OutboxRelay:
    """Publishes the outbox; woken after each commit that wrote to it, and polling anyway."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        bus: Bus,
        clock: Clock,
        metrics: LedgerMetrics,
        *,
        poll_seconds: float = 1.0,
        batch: int = 100,
    ) -> None:
        self._pool = pool
        self._bus = bus
        self._clock = clock
        self._metrics = metrics
        self._poll_seconds = poll_seconds
        self._batch = batch
        self._wake = asyncio.Event()
        self._gauge_due = 0.0

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                while await self.publish_pending() == self._batch:
                    pass
                now = asyncio.get_running_loop().time()
                if now >= self._gauge_due:
                    # A count of the table, at most once a poll: a replay wakes the relay
                    # several times a cycle.
                    self._gauge_due = now + self._poll_seconds
                    await self._update_pending_gauge()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox relay pass failed, will retry: %r", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_seconds)

    async def publish_pending(self) -> int:
        """Publish one batch of pending events in id order; return how many rows it took.

        A row that cannot be decoded is marked failed (and counted) rather than retried:
        no later relay pass could publish it, and it must not hold back the rows after it.
        """
        async with acquire(self._pool) as conn:
            rows = await sql.outbox.pending(conn, self._batch)
            events = []
            sent = []
            for row in rows:
                try:
                    message = decode(row["message_type"], row["payload"])
                except UndecodableEvent as exc:
                    await self._set_aside(conn, row, str(exc))
                    continue
                events.append((row["subject"], message, row["event_id"]))
                sent.append(row["id"])
            if events:
                # In id order, acknowledged together; if any is not, nothing is marked and
                # the next pass sends the lot again (copies dropped by their ids).
                await self._bus.publish_all(events)
                await sql.outbox.mark_published(conn, sent, self._clock.now())
        return len(rows)

    async def _set_aside(self, conn: asyncpg.Connection, row: asyncpg.Record, error: str) -> None:
        log.error(
            "outbox event %s (%s) cannot be published, set aside: %s",
            row["event_id"],
            row["message_type"],
            error,
            extra={"outbox_id": row["id"], "subject": row["subject"]},
        )
        await sql.outbox.mark_failed(conn, row["id"], self._clock.now(), error)
        self._metrics.outbox_failed.inc()

    async def _update_pending_gauge(self) -> None:
        async with acquire(self._pool) as conn:
            pending = await sql.outbox.pending_count(conn)
        self._metrics.outbox_pending.set(pending)


class UndecodableEvent(ValueError):
    """An outbox row no event model reads: an unknown type or a payload it rejects."""


def decode(message_type: str, payload: str) -> Message:
    model = _MODELS.get(message_type)
    if model is None:
        raise UndecodableEvent(f"unknown message type {message_type!r}")
    try:
        return model.model_validate_json(payload)
    except ValidationError as exc:
        raise UndecodableEvent(f"invalid {message_type} payload: {exc}") from exc
