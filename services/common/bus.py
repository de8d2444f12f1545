"""The message bus: JetStream for events, core NATS for request-reply.

- ``Bus.connect`` keeps trying until NATS answers (see :mod:`nats_connection`).
- ``publish`` sets ``Nats-Msg-Id`` (subject + natural id) so JetStream drops duplicates.
- ``consume`` runs a durable pull consumer: a message is acked only after its handler
  returned; what happens on failure is :mod:`delivery`'s policy (retry an unavailable
  dependency for as long as it takes, dead-letter what can never succeed).
- ``serve`` answers requests; ``request`` asks and raises typed errors (both are
  :mod:`replies`' job).
Streams are :mod:`streams`' job, dead letters :mod:`dead_letters`'.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.client import JetStreamContext
from nats.js.kv import KeyValue
from pydantic import ValidationError

from services.common.bus_errors import (
    BadRequest,
    BusError,
    NotFound,
    PermanentError,
    RemoteError,
    TransientError,
    Unavailable,
)
from services.common.bus_metrics import BusMetrics
from services.common.consumers import (
    BatchHandler,
    Consumers,
    Delivery,
    Handler,
    WaitForMore,
    short_error,
)
from services.common.contracts import Message
from services.common.dead_letters import MSG_ID, DeadLetterWriter
from services.common.durables import ConsumerSpec
from services.common.nats_connection import connect_nats, redact_url, seen_by_server
from services.common.replies import Replies
from services.common.streams import StreamLimits, ensure_streams

log = logging.getLogger(__name__)

__all__ = [
    "BadRequest",
    "Bus",
    "BusError",
    "BusMetrics",
    "ConsumerSpec",
    "Delivery",
    "NotFound",
    "PermanentError",
    "RemoteError",
    "TransientError",
    "Unavailable",
    "redact_url",
]

M = TypeVar("M", bound=Message)
Q = TypeVar("Q", bound=Message)
R = TypeVar("R", bound=Message)

Publication = tuple[str, Message, str]
"""An event to publish: its subject, the message, its natural id (see :meth:`Bus.publish`)."""

# A drain that has not finished by then is abandoned: shutting down must not hang.
DRAIN_TIMEOUT_SECONDS = 5.0


def message_id(subject: str, natural_id: str) -> str:
    """The ``Nats-Msg-Id`` an event is published with: ``<subject>:<natural_id>``."""
    return f"{subject}:{natural_id}"


class Bus(Replies):
    """Events over JetStream; request-reply (``serve``, ``request``, ``ask``...) comes
    from :class:`Replies`."""

    def __init__(
        self, nc: NatsClient, service: str, metrics: BusMetrics, max_deliver: int = 5
    ) -> None:
        super().__init__(nc, service, self._dead_letter_core)
        self._js: JetStreamContext = nc.jetstream()
        self._metrics = metrics
        self._dead_letters = DeadLetterWriter(self._js, service, metrics)
        self._consumers = Consumers(self._js, metrics, self._dead_letters, max_deliver)

    # ------------------------------------------------------------ lifecycle

    @classmethod
    async def connect(
        cls,
        url: str,
        service: str,
        metrics: BusMetrics,
        *,
        max_deliver: int = 5,
        connect_timeout: float | None = 30.0,
        credentials: str | None = None,
    ) -> Bus:
        """Connect, retrying for ``connect_timeout`` seconds (None: for as long as it takes)."""
        nc = await connect_nats(
            url, service, credentials=credentials, retry_seconds=connect_timeout
        )
        return cls(nc, service, metrics, max_deliver)

    @property
    def connected(self) -> bool:
        return bool(self._nc.is_connected)

    @property
    def consumers_alive(self) -> bool:
        """False once any consumer loop has ended while the bus is not closing."""
        return self._consumers.alive

    @property
    def jetstream(self) -> JetStreamContext:
        return self._js

    async def key_value(self, bucket: str) -> KeyValue:
        """A key-value bucket the streams' administrator created (see :mod:`streams`)."""
        return await self._js.key_value(bucket)

    async def ensure_streams(
        self, limits: StreamLimits | None = None, *, update: bool = True
    ) -> list[str]:
        """Create the streams (and, with ``update``, bring them to ``limits``)."""
        return await ensure_streams(self._js, limits or StreamLimits(), update=update)

    async def close(self) -> None:
        """Stop consumers after their current message, then drain the connection."""
        await self._consumers.stop()
        if self._nc.is_closed:
            return
        try:
            await asyncio.wait_for(self._nc.drain(), DRAIN_TIMEOUT_SECONDS)
        except Exception as exc:
            log.warning("nats: drain did not finish (%r), closing", exc)
            with contextlib.suppress(Exception):
                await self._nc.close()

    # ------------------------------------------------------------ events

    async def publish(self, subject: str, message: Message, natural_id: str) -> None:
        """Publish an event to JetStream with ``Nats-Msg-Id: <subject>:<natural_id>``.

        ``natural_id`` is the event's own id (cycle_id, decision_id, tick_id, outbox id), so
        publishing the same event twice within the duplicate window stores it once.
        """
        headers = {MSG_ID: message_id(subject, natural_id)}
        ack = await self._js.publish(subject, message.to_bytes(), headers=headers)
        self._count_published(message, ack.duplicate)

    async def publish_all(self, events: Sequence[Publication], timeout: float = 5.0) -> None:
        """Publish ``(subject, message, natural_id)`` events in order, then wait for every
        acknowledgement at once (one round trip for the lot, not one per event).

        Sent one after the other on the one connection, they are stored in this order.
        Raises if any is not acknowledged within ``timeout``: the caller publishes the lot
        again, and what was stored already is dropped as a duplicate by its id.
        """
        acks = []
        for subject, message, natural_id in events:
            headers = {MSG_ID: message_id(subject, natural_id)}
            acks.append(await self._js.publish_async(subject, message.to_bytes(), headers=headers))
        try:
            done = await asyncio.wait_for(asyncio.gather(*acks), timeout)
        except BaseException:
            for ack in acks:
                ack.cancel()
            raise
        for (_, message, _), stored in zip(events, done, strict=True):
            self._count_published(message, stored.duplicate)

    def _count_published(self, message: Message, duplicate: bool | None) -> None:
        kind = type(message).__name__
        self._metrics.published.labels(kind).inc()
        if duplicate:
            self._metrics.duplicates.labels(kind).inc()

    async def consume(self, spec: ConsumerSpec, message_type: type[M], handler: Handler[M]) -> None:
        """Create (or bind) the durable consumer, then run its loop in the background.

        Returns once the consumer exists on the server, so even a consumer that starts
        with new messages sees every message published after this call.
        """
        await self._consumers.one_by_one(spec, message_type, handler)

    async def consume_batches(
        self,
        spec: ConsumerSpec,
        types: Mapping[str, type[Message]],
        handler: BatchHandler,
        *,
        resume_after: int | None = None,
        wait_for_more: WaitForMore | None = None,
    ) -> None:
        """Like :meth:`consume`, several subjects in stream order, handled a batch at a time
        (``resume_after``, ``wait_for_more``: see :meth:`Consumers.in_batches`)."""
        await self._consumers.in_batches(
            spec, types, handler, resume_after=resume_after, wait_for_more=wait_for_more
        )

    async def subscribe_core(
        self,
        subject: str,
        message_type: type[M],
        handler: Callable[[M], Awaitable[None]],
        *,
        speaker: Callable[[M], str] | None = None,
        unheard: Callable[[], bool] | None = None,
    ) -> None:
        """A plain (non-durable) subscription, for listeners that may miss messages.

        ``speaker`` names the agent a message speaks for; on a per-agent subject it must
        be the subject's last token (an agent may only speak for itself), else the
        message is dead-lettered instead of handled.

        ``unheard``: when it returns True for a message (it may act on the message's
        arrival, e.g. drop a cached answer), the message is neither decoded nor handled:
        a listener whose audience is away spends nothing on it. A malformed message is
        then not dead-lettered here either (the subject's durable consumers do that).
        """

        async def on_message(msg: Msg) -> None:
            if unheard is not None and unheard():
                return
            try:
                message = message_type.model_validate_json(msg.data)
            except ValidationError as exc:
                await self._dead_letter_core(subject, msg, short_error(exc))
                return
            if speaker is not None:
                claimed, actual = speaker(message), msg.subject.rsplit(".", 1)[-1]
                if claimed != actual:
                    error = f"names agent {claimed!r} but came on the subject of {actual!r}"
                    await self._dead_letter_core(subject, msg, error, "rejected")
                    return
            try:
                await handler(message)
            except Exception:
                log.exception("listener on %s failed", subject)

        await self._nc.subscribe(subject, cb=on_message)
        await seen_by_server(self._nc)

    async def subscribe_arrivals(self, subject: str, arrived: Callable[[], None]) -> None:
        """A plain subscription that only notes that messages arrive (``arrived`` called for
        each, nothing decoded): for a listener to whom a message's coming is all that
        counts."""

        async def on_message(_: Msg) -> None:
            try:
                arrived()
            except Exception:
                log.exception("listener on %s failed", subject)

        await self._nc.subscribe(subject, cb=on_message)
        await seen_by_server(self._nc)

    async def _dead_letter_core(
        self, consumer: str, msg: Msg, error: str, reason: str = "malformed"
    ) -> None:
        try:
            await self._dead_letters.send(consumer, msg, reason, error)
        except Exception as exc:
            # A listener cannot redeliver: the letter is logged (by send) and counted here.
            log.warning("dead letter from %s not stored: %r", consumer, exc)
            self._metrics.dead_lettered.labels(consumer, reason).inc()
