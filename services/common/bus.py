"""The message bus: JetStream for events, core NATS for request-reply.

- ``Bus.connect`` keeps trying until NATS answers (see :mod:`nats_connection`).
- ``publish`` sets ``Nats-Msg-Id`` (subject + natural id) so JetStream drops duplicates.
- ``consume`` runs a durable pull consumer: a message is acked only after its handler
  returned; what happens on failure is :mod:`delivery`'s policy (retry an unavailable
  dependency for as long as it takes, dead-letter what can never succeed).
- ``serve`` answers requests; ``request`` asks and raises typed errors.
Streams are :mod:`streams`' job, dead letters :mod:`dead_letters`'.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError
from nats.js.kv import KeyValue
from pydantic import ValidationError

from services.common import subjects
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
from services.common.contracts import ErrorReply, Message
from services.common.dead_letters import MSG_ID, DeadLetterWriter
from services.common.delivery import (
    DEFAULT_RETRY_DELAYS,
    Ack,
    DeadLetter,
    DeliveryPolicy,
    Retry,
    is_transient,
)
from services.common.nats_connection import connect_nats, redact_url
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
R = TypeVar("R", bound=Message)

# The error code of a responder whose own dependency is down: the caller may try again.
UNAVAILABLE = "unavailable"

# A drain that has not finished by then is abandoned: shutting down must not hang.
DRAIN_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class Delivery:
    """Where a consumed message came from."""

    subject: str
    msg_id: str
    stream_sequence: int
    num_delivered: int

    @property
    def last_token(self) -> str:
        """The subject's last token: the agent id on per-agent subjects."""
        return self.subject.rsplit(".", 1)[-1]


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
    retry_delays: tuple[float, ...] = field(default=DEFAULT_RETRY_DELAYS)
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
        self._dead_letters = DeadLetterWriter(self._js, service, metrics)
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
        return self._stopping.is_set() or not any(t.done() for t in self._tasks)

    @property
    def service(self) -> str:
        return self._service

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
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
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
        msg_id = f"{subject}:{natural_id}"
        ack = await self._js.publish(subject, message.to_bytes(), headers={MSG_ID: msg_id})
        kind = type(message).__name__
        self._metrics.published.labels(kind).inc()
        if ack.duplicate:
            self._metrics.duplicates.labels(kind).inc()

    async def consume(self, spec: ConsumerSpec, message_type: type[M], handler: Handler[M]) -> None:
        """Create (or bind) the durable consumer, then run its loop in the background.

        Returns once the consumer exists on the server, so even a consumer that starts
        with new messages sees every message published after this call.
        """
        sub = await self._subscribe(spec)
        log.info("consuming %s as %s", spec.filter_subject, spec.durable)
        policy = DeliveryPolicy(spec.retry_delays, self._max_deliver)
        self._tasks.append(
            asyncio.create_task(
                self._consume_loop(sub, spec, policy, message_type, handler),
                name=f"consume:{spec.durable}",
            )
        )

    async def consumer_idle(self, durable: str) -> bool:
        """True when durable ``durable`` has nothing left to deliver and nothing unacked."""
        info = await self._js.consumer_info(subjects.STREAM, durable)
        return not info.num_pending and not info.num_ack_pending

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
        policy: DeliveryPolicy,
        message_type: type[M],
        handler: Handler[M],
    ) -> None:
        try:
            while not self._stopping.is_set():
                try:
                    batch = await sub.fetch(spec.batch, timeout=1.0)
                except TimeoutError:  # nothing to fetch (nats' own and asyncio's timeouts)
                    continue
                except Exception as exc:
                    if self._stopping.is_set():
                        return
                    log.warning("fetch on %s failed: %r", spec.durable, exc)
                    await asyncio.sleep(0.5)
                    continue
                for msg in batch:
                    try:
                        await self._handle(spec, policy, message_type, handler, msg)
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
        self,
        spec: ConsumerSpec,
        policy: DeliveryPolicy,
        message_type: type[M],
        handler: Handler[M],
        msg: Msg,
    ) -> None:
        meta = msg.metadata
        if meta.num_delivered > 1:
            self._metrics.redelivered.labels(spec.durable).inc()
        try:
            message = message_type.model_validate_json(msg.data)
        except ValidationError as exc:
            await self._settle(spec, msg, DeliveryPolicy.malformed(_short(exc)))
            return
        delivery = Delivery(
            subject=msg.subject,
            msg_id=(msg.header or {}).get(MSG_ID) or f"{subjects.STREAM}:{meta.sequence.stream}",
            stream_sequence=meta.sequence.stream,
            num_delivered=meta.num_delivered,
        )
        error: Exception | None = None
        try:
            await handler(message, delivery)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = exc
        settlement = policy.settle(error, meta.num_delivered)
        if isinstance(settlement, Retry):
            self._metrics.failed.labels(spec.durable).inc()
            if settlement.transient:
                self._metrics.retried.labels(spec.durable).inc()
            # Every delivery of a long outage would flood the log: the first few and then
            # one in ten are enough to follow it.
            if meta.num_delivered <= 3 or meta.num_delivered % 10 == 0:
                log.warning(
                    "%s: %s on %s (delivery %d), retrying in %gs: %s",
                    spec.durable,
                    "dependency unavailable" if settlement.transient else "handler failed",
                    msg.subject,
                    meta.num_delivered,
                    settlement.delay,
                    error,
                )
        await self._settle(spec, msg, settlement)

    async def _settle(
        self, spec: ConsumerSpec, msg: Msg, settlement: Ack | Retry | DeadLetter
    ) -> None:
        if isinstance(settlement, Ack):
            await msg.ack_sync()
            self._metrics.consumed.labels(spec.durable).inc()
        elif isinstance(settlement, Retry):
            await msg.nak(delay=settlement.delay)
        else:
            await self._dead_letters.send(spec.durable, msg, settlement.reason, settlement.error)
            await msg.term()

    async def subscribe_core(
        self,
        subject: str,
        message_type: type[M],
        handler: Callable[[M], Awaitable[None]],
        *,
        speaker: Callable[[M], str] | None = None,
    ) -> None:
        """A plain (non-durable) subscription, for listeners that may miss messages.

        ``speaker`` names the agent a message speaks for; on a per-agent subject it must
        be the subject's last token (an agent may only speak for itself), else the
        message is dead-lettered instead of handled.
        """

        async def on_message(msg: Msg) -> None:
            try:
                message = message_type.model_validate_json(msg.data)
            except ValidationError as exc:
                await self._dead_letter_core(subject, msg, _short(exc))
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
        await self._nc.flush()

    async def _dead_letter_core(
        self, consumer: str, msg: Msg, error: str, reason: str = "malformed"
    ) -> None:
        try:
            await self._dead_letters.send(consumer, msg, reason, error)
        except Exception as exc:
            # A listener cannot redeliver: the letter is logged (by send) and counted here.
            log.warning("dead letter from %s not stored: %r", consumer, exc)
            self._metrics.dead_lettered.labels(consumer, reason).inc()

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
                except TransientError as exc:
                    reply = ErrorReply(code=UNAVAILABLE, message=f"{self._service}: {exc}")
                except Exception:
                    # Details stay in this service's log; the caller gets a reference to it.
                    ref = uuid.uuid4().hex[:12]
                    log.exception("request on %s failed (ref %s)", subject, ref)
                    reply = ErrorReply(
                        code="internal", message=f"{self._service} failed (log ref {ref})"
                    )
            if msg.reply:
                with contextlib.suppress(Exception):  # the caller's connection may be gone
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
        except Exception as exc:
            if not is_transient(exc):
                raise
            # Disconnected, reconnecting, closed: the answer may come on a later try.
            raise Unavailable(subject, f"NATS unavailable ({exc!r})") from exc
        try:
            return reply_type.model_validate_json(msg.data)
        except ValidationError:
            try:
                error = ErrorReply.model_validate_json(msg.data)
            except ValidationError as exc:
                raise BusError(f"{subject}: unreadable reply: {_short(exc)}") from exc
            if error.code == UNAVAILABLE:
                raise Unavailable(subject, error.message) from None
            raise RemoteError(subject, error) from None

    async def publish_raw(self, subject: str, data: bytes) -> None:
        """Publish bytes as they are (tests and tools use it to send malformed input)."""
        await self._nc.publish(subject, data)
        await self._nc.flush()


def _short(exc: ValidationError) -> str:
    """A one-line summary of a validation error, safe to log and to send."""
    errors = exc.errors(include_url=False, include_input=False)
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in errors[:5]
    ) or json.dumps(str(exc))
