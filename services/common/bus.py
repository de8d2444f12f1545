"""The message bus: NATS core for request-reply, JetStream for events.

- ``Bus.connect`` retries until the server answers, then reconnects forever.
- ``ensure_streams`` creates or updates the event stream and the dead-letter stream.
- ``publish`` sets ``Nats-Msg-Id`` (subject + natural id) so JetStream drops duplicates.
- ``consume`` runs a durable pull consumer: a message is acked only after its handler
  returned; a handler error naks it with back-off; a message that cannot be decoded, or
  that failed ``max_deliver`` times, goes to ``arena.dlq.<service>`` and is counted.
- ``serve`` answers requests; ``request`` asks and raises typed errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    KeyValueConfig,
    StorageType,
    StreamConfig,
)
from nats.js.client import JetStreamContext
from nats.js.errors import BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue
from pydantic import ValidationError

from services.common import subjects
from services.common.bus_errors import (
    BadRequest,
    BusError,
    NotFound,
    PermanentError,
    RemoteError,
    Unavailable,
)
from services.common.bus_metrics import BusMetrics
from services.common.contracts import ErrorReply, Message

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
    "Unavailable",
    "redact_url",
]

M = TypeVar("M", bound=Message)
R = TypeVar("R", bound=Message)

MSG_ID = "Nats-Msg-Id"
DLQ_SUBJECT = "Arena-Dlq-Subject"
DLQ_ERROR = "Arena-Dlq-Error"
DLQ_CONSUMER = "Arena-Dlq-Consumer"
DLQ_DELIVERIES = "Arena-Dlq-Deliveries"

STREAM_MAX_AGE_SECONDS = 7 * 24 * 3600
DUPLICATE_WINDOW_SECONDS = 120.0


@dataclass(frozen=True)
class Delivery:
    """Where a consumed message came from."""

    subject: str
    msg_id: str
    stream_sequence: int
    num_delivered: int


Handler = Callable[[M, Delivery], Awaitable[None]]
RequestHandler = Callable[[M], Awaitable[Message]]


@dataclass(frozen=True)
class ConsumerSpec:
    """A durable pull consumer of one message type."""

    durable: str
    filter_subject: str
    # Where a newly created durable starts ("all": the whole stream; "last": the latest
    # message on the subject, then new ones; "new": only what is published after it).
    # An existing durable always resumes from its own position.
    start: Literal["all", "last", "new"] = "all"
    ack_wait_seconds: float = 30.0
    batch: int = 16
    retry_delays: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0, 5.0)
    # 1 keeps strict order even across a crash: nothing newer is delivered while a
    # message is unacked (a killed consumer's message comes back after ack_wait).
    max_ack_pending: int | None = None


_DELIVER = {
    "all": DeliverPolicy.ALL,
    "last": DeliverPolicy.LAST_PER_SUBJECT,
    "new": DeliverPolicy.NEW,
}


class Bus:
    def __init__(
        self, nc: NatsClient, service: str, metrics: BusMetrics, max_deliver: int = 5
    ) -> None:
        self._nc = nc
        self._js: JetStreamContext = nc.jetstream()
        self._service = service
        self._metrics = metrics
        self._max_deliver = max_deliver
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()

    # ------------------------------------------------------------ lifecycle

    @classmethod
    async def connect(
        cls,
        url: str,
        service: str,
        metrics: BusMetrics,
        *,
        max_deliver: int = 5,
        connect_timeout: float = 30.0,
        credentials: str | None = None,
    ) -> Bus:
        """Connect, retrying for ``connect_timeout`` seconds; later drops reconnect forever."""

        async def on_error(exc: Exception) -> None:
            log.warning("nats: %s", exc)

        async def on_disconnected() -> None:
            log.warning("nats: disconnected, reconnecting")

        async def on_reconnected() -> None:
            log.info("nats: reconnected")

        loop = asyncio.get_running_loop()
        deadline = loop.time() + connect_timeout
        while True:
            try:
                nc = await nats.connect(
                    servers=[url],
                    name=service,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    connect_timeout=2,
                    user_credentials=credentials,
                    error_cb=on_error,
                    disconnected_cb=on_disconnected,
                    reconnected_cb=on_reconnected,
                )
                return cls(nc, service, metrics, max_deliver)
            except Exception as exc:
                if loop.time() >= deadline:
                    raise BusError(f"cannot connect to NATS at {redact_url(url)}: {exc}") from exc
                log.warning("NATS at %s not reachable yet (%s), retrying", redact_url(url), exc)
                await asyncio.sleep(0.5)

    @property
    def connected(self) -> bool:
        return bool(self._nc.is_connected)

    @property
    def consumers_alive(self) -> bool:
        """False once any consumer loop has ended while the bus is not closing."""
        return self._stopping.is_set() or not any(t.done() for t in self._tasks)

    @property
    def service(self) -> str:
        return self._service

    async def ensure_streams(self) -> None:
        """Create or update the event and dead-letter streams (safe to call from every service)."""
        await self._ensure_stream(
            StreamConfig(
                name=subjects.STREAM,
                subjects=list(subjects.STREAM_SUBJECTS),
                storage=StorageType.FILE,
                max_age=STREAM_MAX_AGE_SECONDS,
                duplicate_window=DUPLICATE_WINDOW_SECONDS,
            )
        )
        await self._ensure_stream(
            StreamConfig(
                name=subjects.DLQ_STREAM,
                subjects=[subjects.DLQ_ALL],
                storage=StorageType.FILE,
                max_age=STREAM_MAX_AGE_SECONDS,
                duplicate_window=DUPLICATE_WINDOW_SECONDS,
            )
        )
        # The market's state bucket (JetStream key-value): created, never reconfigured.
        try:
            await self._js.key_value(subjects.MARKET_STATE_BUCKET)
        except BucketNotFoundError:
            # Creating an identical bucket is idempotent, so a race between services is fine.
            await self._js.create_key_value(
                KeyValueConfig(bucket=subjects.MARKET_STATE_BUCKET, storage=StorageType.FILE)
            )

    async def key_value(self, bucket: str) -> KeyValue:
        """A key-value bucket that ``ensure_streams`` created."""
        return await self._js.key_value(bucket)

    async def _ensure_stream(self, config: StreamConfig) -> None:
        try:
            await self._js.stream_info(config.name or "")
        except NotFoundError:
            try:
                await self._js.add_stream(config)
                return
            except nats.js.errors.BadRequestError:
                pass  # another service created it between our two calls
        await self._js.update_stream(config)

    async def close(self) -> None:
        """Stop consumers after their current message, then drain the connection."""
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if not self._nc.is_closed:
            with contextlib.suppress(Exception):
                await self._nc.drain()

    # ------------------------------------------------------------ events

    async def publish(self, subject: str, message: Message, natural_id: str) -> None:
        """Publish an event to JetStream with ``Nats-Msg-Id: <subject>:<natural_id>``.

        ``natural_id`` is the event's own id (cycle_id, decision_id, tick_id, outbox id), so
        publishing the same event twice within the duplicate window stores it once.
        """
        msg_id = f"{subject}:{natural_id}"
        ack = await self._js.publish(subject, message.to_bytes(), headers={MSG_ID: msg_id})
        kind = type(message).__name__
        self._metrics.published.labels(kind).inc()
        if ack.duplicate:
            self._metrics.duplicates.labels(kind).inc()

    async def dead_letter(self, consumer: str, msg: Msg, error: str, reason: str) -> None:
        log.error(
            "dead-lettering message on %s for %s (%s): %s", msg.subject, consumer, reason, error
        )
        headers = {
            DLQ_SUBJECT: msg.subject,
            DLQ_ERROR: error[:1000],
            DLQ_CONSUMER: consumer,
        }
        if msg.header and MSG_ID in msg.header:
            headers[MSG_ID] = f"dlq:{consumer}:{msg.header[MSG_ID]}"
        with contextlib.suppress(Exception):
            headers[DLQ_DELIVERIES] = str(msg.metadata.num_delivered)
        await self._js.publish(subjects.dead_letter(self._service), msg.data, headers=headers)
        self._metrics.dead_lettered.labels(consumer, reason).inc()

    async def consume(self, spec: ConsumerSpec, message_type: type[M], handler: Handler[M]) -> None:
        """Create (or bind) the durable consumer, then run its loop in the background.

        Returns once the consumer exists on the server, so even a consumer that starts
        with new messages sees every message published after this call.
        """
        sub = await self._subscribe(spec)
        log.info("consuming %s as %s", spec.filter_subject, spec.durable)
        self._tasks.append(
            asyncio.create_task(
                self._consume_loop(sub, spec, message_type, handler),
                name=f"consume:{spec.durable}",
            )
        )

    async def _subscribe(self, spec: ConsumerSpec) -> JetStreamContext.PullSubscription:
        config = ConsumerConfig(
            durable_name=spec.durable,
            filter_subject=spec.filter_subject,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=_DELIVER[spec.start],
            ack_wait=spec.ack_wait_seconds,
            max_deliver=-1,
            max_ack_pending=spec.max_ack_pending,
        )
        try:
            info = await self._js.consumer_info(subjects.STREAM, spec.durable)
            if info.config.filter_subject != spec.filter_subject:
                await self._js.delete_consumer(subjects.STREAM, spec.durable)
                raise NotFoundError
        except NotFoundError:
            await self._js.add_consumer(subjects.STREAM, config)
        return await self._js.pull_subscribe_bind(durable=spec.durable, stream=subjects.STREAM)

    async def _consume_loop(
        self,
        sub: JetStreamContext.PullSubscription,
        spec: ConsumerSpec,
        message_type: type[M],
        handler: Handler[M],
    ) -> None:
        try:
            while not self._stopping.is_set():
                try:
                    batch = await sub.fetch(spec.batch, timeout=1.0)
                except NatsTimeoutError:
                    continue
                except Exception as exc:
                    if self._stopping.is_set():
                        return
                    log.warning("fetch on %s failed: %s", spec.durable, exc)
                    await asyncio.sleep(0.5)
                    continue
                for msg in batch:
                    try:
                        await self._handle(spec, message_type, handler, msg)
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        # An ack, nak or dead-letter publish that failed (connection lost):
                        # the message is redelivered after ack_wait; the loop must go on.
                        self._metrics.failed.labels(spec.durable).inc()
                        log.exception(
                            "%s could not settle a message on %s", spec.durable, msg.subject
                        )
        finally:
            # Left to ``nc.drain()``, a pull subscription can hang it for good: the status
            # reply of a fetch cancelled by ``close`` waits in its queue with no reader.
            # Unacked messages are redelivered anyway, so drop the subscription instead.
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _handle(
        self, spec: ConsumerSpec, message_type: type[M], handler: Handler[M], msg: Msg
    ) -> None:
        meta = msg.metadata
        if meta.num_delivered > 1:
            self._metrics.redelivered.labels(spec.durable).inc()
        try:
            message = message_type.model_validate_json(msg.data)
        except ValidationError as exc:
            await self.dead_letter(spec.durable, msg, _short(exc), "malformed")
            await msg.term()
            return
        delivery = Delivery(
            subject=msg.subject,
            msg_id=(msg.header or {}).get(MSG_ID) or f"{subjects.STREAM}:{meta.sequence.stream}",
            stream_sequence=meta.sequence.stream,
            num_delivered=meta.num_delivered,
        )
        try:
            await handler(message, delivery)
        except PermanentError as exc:
            await self.dead_letter(spec.durable, msg, str(exc), "rejected")
            await msg.term()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._metrics.failed.labels(spec.durable).inc()
            if meta.num_delivered >= self._max_deliver:
                await self.dead_letter(spec.durable, msg, repr(exc), "max_deliver")
                await msg.term()
                return
            log.warning(
                "%s failed on %s (delivery %d of %d), will retry: %r",
                spec.durable,
                msg.subject,
                meta.num_delivered,
                self._max_deliver,
                exc,
            )
            delay = spec.retry_delays[min(meta.num_delivered, len(spec.retry_delays)) - 1]
            await msg.nak(delay=delay)
            return
        await msg.ack_sync()
        self._metrics.consumed.labels(spec.durable).inc()

    async def subscribe_core(
        self, subject: str, message_type: type[M], handler: Callable[[M], Awaitable[None]]
    ) -> None:
        """A plain (non-durable) subscription, for listeners that may miss messages."""

        async def on_message(msg: Msg) -> None:
            try:
                message = message_type.model_validate_json(msg.data)
            except ValidationError as exc:
                await self._dead_letter_core(subject, msg, _short(exc))
                return
            try:
                await handler(message)
            except Exception:
                log.exception("listener on %s failed", subject)

        await self._nc.subscribe(subject, cb=on_message)
        await self._nc.flush()

    async def _dead_letter_core(self, consumer: str, msg: Msg, error: str) -> None:
        log.error("malformed message on %s: %s", msg.subject, error)
        headers = {DLQ_SUBJECT: msg.subject, DLQ_ERROR: error[:1000], DLQ_CONSUMER: consumer}
        with contextlib.suppress(Exception):
            await self._js.publish(subjects.dead_letter(self._service), msg.data, headers=headers)
        self._metrics.dead_lettered.labels(consumer, "malformed").inc()

    # ------------------------------------------------------------ request-reply

    async def serve(self, subject: str, request_type: type[M], handler: RequestHandler[M]) -> None:
        """Answer requests on ``subject`` (queue group, so replicas share the load)."""

        async def on_request(msg: Msg) -> None:
            try:
                request = request_type.model_validate_json(msg.data or b"{}")
            except ValidationError as exc:
                await self._dead_letter_core(subject, msg, _short(exc))
                reply: Message = ErrorReply(code="bad_request", message=_short(exc))
            else:
                try:
                    reply = await handler(request)
                except NotFound as exc:
                    reply = ErrorReply(code="not_found", message=str(exc))
                except BadRequest as exc:
                    reply = ErrorReply(code="bad_request", message=str(exc))
                except Exception:
                    # Details stay in this service's log; the caller gets a reference to it.
                    ref = uuid.uuid4().hex[:12]
                    log.exception("request on %s failed (ref %s)", subject, ref)
                    reply = ErrorReply(
                        code="internal", message=f"{self._service} failed (log ref {ref})"
                    )
            if msg.reply:
                await msg.respond(reply.to_bytes())

        await self._nc.subscribe(subject, queue=f"{self._service}-q", cb=on_request)
        await self._nc.flush()  # the server knows the subscription before we return

    async def request(
        self, subject: str, message: Message, reply_type: type[R], timeout: float = 2.0
    ) -> R:
        try:
            msg = await self._nc.request(subject, message.to_bytes(), timeout=timeout)
        except NoRespondersError as exc:
            raise Unavailable(subject, "no service is listening") from exc
        except NatsTimeoutError as exc:
            raise Unavailable(subject, f"timed out after {timeout:g}s") from exc
        try:
            return reply_type.model_validate_json(msg.data)
        except ValidationError:
            try:
                error = ErrorReply.model_validate_json(msg.data)
            except ValidationError as exc:
                raise BusError(f"{subject}: unreadable reply: {_short(exc)}") from exc
            raise RemoteError(subject, error) from None

    async def publish_raw(self, subject: str, data: bytes) -> None:
        """Publish bytes as they are (tests and tools use it to send malformed input)."""
        await self._nc.publish(subject, data)
        await self._nc.flush()


def redact_url(url: str) -> str:
    """``url`` without its secret (a password, or a token in the user part), for logs."""
    parts = urlsplit(url)
    if parts.username is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.password is not None else "***@"
    return urlunsplit(parts._replace(netloc=user + host))


def _short(exc: ValidationError) -> str:
    """A one-line summary of a validation error, safe to log and to send."""
    errors = exc.errors(include_url=False, include_input=False)
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in errors[:5]
    ) or json.dumps(str(exc))
