"""Durable pull consumers: fetch, decode, hand over, settle by the delivery policy.

Two shapes:
- :meth:`Consumers.one_by_one`: one message at a time to a handler of one type;
- :meth:`Consumers.in_batches`: what was fetched, of several types (by subject), to a
  handler that applies the lot at once, in stream order (the ledger applies a batch in
  one transaction). A batch whose handler fails because a dependency is unavailable is
  kept in hand and retried in place, so the order never changes; one that fails for an
  unforeseen reason is split into single messages so only the poison one is
  dead-lettered; the handler may also refuse single messages for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from nats.aio.msg import Msg
from nats.js.client import JetStreamContext
from pydantic import ValidationError

from services.common import subjects
from services.common.bus_metrics import BusMetrics
from services.common.contracts import Message
from services.common.dead_letters import MSG_ID, DeadLetterWriter
from services.common.decoded import DecodedMessages
from services.common.delivery import Ack, DeadLetter, DeliveryPolicy, Retry
from services.common.durables import ConsumerSpec, gathered_messages, ready_messages, subscribe
from services.common.tasks import cancel_and_wait

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)


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
Item = tuple[Message, Delivery]
# Returns the items it refuses for good, by index, with the reason (dead-lettered).
BatchHandler = Callable[[Sequence[Item]], Awaitable[Mapping[int, str]]]
# A wait for more shorter than this is not asked for (a pull's expiry is a little less).
MIN_FETCH_SECONDS = 0.001
# Given the messages fetched so far, how long to wait for more before handing them over
# (0: hand them over now).
WaitForMore = Callable[[Sequence[Msg]], float]


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: ``*`` is one token, ``>`` the rest."""
    wanted, given = pattern.split("."), subject.split(".")
    for index, token in enumerate(wanted):
        if token == ">":
            return len(given) > index
        if index >= len(given) or (token != "*" and token != given[index]):
            return False
    return len(given) == len(wanted)


class Consumers:
    """Runs a service's durable consumers as background tasks."""

    def __init__(
        self,
        js: JetStreamContext,
        metrics: BusMetrics,
        dead_letters: DeadLetterWriter,
        max_deliver: int,
    ) -> None:
        self._js = js
        self._metrics = metrics
        self._dead_letters = dead_letters
        self._max_deliver = max_deliver
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        # Shared by this process's consumers: a snapshot parsed once for every hosted agent.
        self._decoded = DecodedMessages()

    @property
    def alive(self) -> bool:
        """False once any consumer loop has ended while not stopping."""
        return self._stopping.is_set() or not any(t.done() for t in self._tasks)

    async def stop(self) -> None:
        self._stopping.set()
        await cancel_and_wait(self._tasks)
        self._tasks.clear()

    # ------------------------------------------------------------ starting

    async def one_by_one(
        self, spec: ConsumerSpec, message_type: type[M], handler: Handler[M]
    ) -> None:
        sub = await subscribe(self._js, spec)
        policy = DeliveryPolicy(spec.retry_delays, self._max_deliver)

        async def in_order(msgs: list[Msg]) -> None:
            for msg in msgs:
                await self._handle_one(spec, policy, message_type, handler, msg)

        async def handle(batch: list[Msg]) -> None:
            if not spec.concurrent_subjects or len(batch) < 2:
                await in_order(batch)
                return
            by_subject: dict[str, list[Msg]] = {}
            for msg in batch:
                by_subject.setdefault(msg.subject, []).append(msg)
            await asyncio.gather(*(in_order(msgs) for msgs in by_subject.values()))

        self._start(spec, sub, handle)

    async def in_batches(
        self,
        spec: ConsumerSpec,
        types: Mapping[str, type[Message]],
        handler: BatchHandler,
        *,
        resume_after: int | None = None,
        wait_for_more: WaitForMore | None = None,
    ) -> None:
        """Consume ``spec``'s subjects, each decoded as ``types[pattern]``, in batches.

        ``resume_after``: the last stream sequence the handler applied (it keeps that
        itself, with its effects): the durable is made anew to start right after it, so
        nothing a dead predecessor left unacknowledged comes back out of order.
        ``wait_for_more``: asked after every fetch how long to wait for more messages
        before handing the batch over (the wait counted from its first ask, up to
        ``spec.batch`` messages); without it a batch is what was ready.
        """
        sub = await subscribe(self._js, spec, resume_after)
        policy = DeliveryPolicy(spec.retry_delays, self._max_deliver)

        async def handle(batch: list[Msg]) -> None:
            await self._handle_batch(spec, policy, types, handler, batch)

        self._start(spec, sub, handle, wait_for_more)

    def _start(
        self,
        spec: ConsumerSpec,
        sub: JetStreamContext.PullSubscription,
        handle: Callable[[list[Msg]], Awaitable[None]],
        wait_for_more: WaitForMore | None = None,
    ) -> None:
        log.info("consuming %s as %s", ", ".join(spec.subjects), spec.durable)
        self._tasks.append(
            asyncio.create_task(
                self._loop(sub, spec, handle, wait_for_more), name=f"consume:{spec.durable}"
            )
        )

    async def _loop(
        self,
        sub: JetStreamContext.PullSubscription,
        spec: ConsumerSpec,
        handle: Callable[[list[Msg]], Awaitable[None]],
        wait_for_more: WaitForMore | None = None,
    ) -> None:
        try:
            while not self._stopping.is_set():
                try:
                    if spec.linger_seconds is not None:
                        # What comes within the linger, with one pull.
                        batch = await gathered_messages(sub, spec.batch, spec.linger_seconds)
                        if not batch:
                            continue
                    else:
                        # One message, handed over the moment it arrives; then whatever
                        # else is ready, without waiting (a fetch of N waits until N or its
                        # timeout).
                        batch = await sub.fetch(1, timeout=1.0)
                        if spec.batch > 1:
                            batch += await ready_messages(sub, spec.batch - 1)
                    if wait_for_more is not None:
                        await _gather(sub, spec.batch, batch, wait_for_more)
                except TimeoutError:  # nothing to fetch (nats' own and asyncio's timeouts)
                    continue
                except Exception as exc:
                    if self._stopping.is_set():
                        return
                    log.warning("fetch on %s failed: %r", spec.durable, exc)
                    await asyncio.sleep(0.5)
                    continue
                try:
                    await handle(batch)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # An ack, nak or dead-letter publish that failed (connection lost): the
                    # messages come back after ack_wait; the loop must go on.
                    self._metrics.failed.labels(spec.durable).inc()
                    log.exception("%s could not settle its messages", spec.durable)
        finally:
            # Left to ``nc.drain()``, a pull subscription can hang it for good: the status
            # reply of a fetch cancelled by ``stop`` waits in its queue with no reader.
            # Unacked messages are redelivered anyway, so drop the subscription instead.
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    # ------------------------------------------------------------ one by one

    async def _handle_one(
        self,
        spec: ConsumerSpec,
        policy: DeliveryPolicy,
        message_type: type[M],
        handler: Handler[M],
        msg: Msg,
    ) -> None:
        decoded = await self._decode(spec, msg, message_type)
        if decoded is None:
            return
        message, delivery = decoded
        error: Exception | None = None
        try:
            await handler(message, delivery)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = exc
        settlement = policy.settle(error, delivery.num_delivered)
        if isinstance(settlement, Retry):
            self._note_retry(spec, settlement, delivery, error)
        await self._settle(spec, msg, settlement)

    # ------------------------------------------------------------ batches

    async def _handle_batch(
        self,
        spec: ConsumerSpec,
        policy: DeliveryPolicy,
        types: Mapping[str, type[Message]],
        handler: BatchHandler,
        batch: list[Msg],
    ) -> None:
        kept: list[tuple[Msg, Item]] = []
        for msg in batch:
            message_type = next(
                (t for pattern, t in types.items() if subject_matches(pattern, msg.subject)),
                None,
            )
            if message_type is None:
                await self._settle(
                    spec, msg, DeadLetter("malformed", f"no message type for {msg.subject}")
                )
                continue
            decoded = await self._decode(spec, msg, message_type)
            if decoded is not None:
                kept.append((msg, decoded))
        if kept:
            await self._apply(spec, policy, handler, kept)

    async def _apply(
        self,
        spec: ConsumerSpec,
        policy: DeliveryPolicy,
        handler: BatchHandler,
        kept: list[tuple[Msg, Item]],
    ) -> None:
        attempt = 0
        while True:
            attempt += 1
            try:
                refused = await handler([item for _, item in kept])
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                settlement = policy.settle(exc, attempt)
                if isinstance(settlement, Retry):
                    self._note_retry(spec, settlement, kept[0][1][1], exc)
                    # Still ours: keep them from being redelivered while we wait.
                    for msg, _ in kept:
                        await msg.in_progress()
                    await asyncio.sleep(settlement.delay)
                    continue
                if len(kept) == 1:
                    await self._settle(spec, kept[0][0], settlement)
                    return
                # Which message is the poison one? Each on its own, in order, finds out.
                log.warning(
                    "%s: a batch of %d failed (%r); applying them one by one",
                    spec.durable,
                    len(kept),
                    exc,
                )
                for single in kept:
                    await self._apply(spec, policy, handler, [single])
                return
        for index, (msg, _) in enumerate(kept):
            reason = refused.get(index)
            outcome: Ack | DeadLetter = Ack() if reason is None else DeadLetter("rejected", reason)
            await self._settle(spec, msg, outcome)

    # ------------------------------------------------------------ common

    async def _decode(
        self, spec: ConsumerSpec, msg: Msg, message_type: type[M]
    ) -> tuple[M, Delivery] | None:
        """The message and where it came from; None after dead-lettering what cannot be read."""
        meta = msg.metadata
        if meta.num_delivered > 1:
            self._metrics.redelivered.labels(spec.durable).inc()
        try:
            message = self._decoded.decode(message_type, meta.sequence.stream, msg.data)
        except ValidationError as exc:
            await self._settle(spec, msg, DeliveryPolicy.malformed(short_error(exc)))
            return None
        return message, Delivery(
            subject=msg.subject,
            msg_id=(msg.header or {}).get(MSG_ID) or f"{subjects.STREAM}:{meta.sequence.stream}",
            stream_sequence=meta.sequence.stream,
            num_delivered=meta.num_delivered,
        )

    def _note_retry(
        self, spec: ConsumerSpec, retry: Retry, delivery: Delivery, error: BaseException | None
    ) -> None:
        self._metrics.failed.labels(spec.durable).inc()
        if retry.transient:
            self._metrics.retried.labels(spec.durable).inc()
        # Every delivery of a long outage would flood the log: the first few and then one in
        # ten are enough to follow it.
        if delivery.num_delivered <= 3 or delivery.num_delivered % 10 == 0:
            log.warning(
                "%s: %s on %s (delivery %d), retrying in %gs: %s",
                spec.durable,
                "dependency unavailable" if retry.transient else "handler failed",
                delivery.subject,
                delivery.num_delivered,
                retry.delay,
                error,
            )

    async def _settle(
        self,
        spec: ConsumerSpec,
        msg: Msg,
        settlement: Ack | Retry | DeadLetter,
    ) -> None:
        """Ack, retry or dead-letter ``msg``. An ack goes out without waiting for the
        server to confirm it (a round trip a message): one lost with the connection only
        redelivers its message, which every handler takes as the copy it is (effects are
        keyed by the message's ids: decisions by cycle and agent, verdicts by decision,
        the books' inputs by message id)."""
        if isinstance(settlement, Ack):
            await msg.ack()
            self._metrics.consumed.labels(spec.durable).inc()
        elif isinstance(settlement, Retry):
            await msg.nak(delay=settlement.delay)
        else:
            await self._dead_letters.send(spec.durable, msg, settlement.reason, settlement.error)
            await msg.term()


def short_error(exc: ValidationError) -> str:
    """A one-line summary of a validation error, safe to log and to send."""
    errors = exc.errors(include_url=False, include_input=False)
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in errors[:5]
    ) or json.dumps(str(exc))


async def _gather(
    sub: JetStreamContext.PullSubscription,
    limit: int,
    batch: list[Msg],
    wait_for_more: WaitForMore,
) -> None:
    """Add to ``batch`` what comes while ``wait_for_more`` asks for it, up to ``limit``
    messages. A fetch that times out or fails ends the wait: what is held is handed over
    (a failed fetch is the loop's to notice on its next one)."""
    loop = asyncio.get_running_loop()
    deadline: float | None = None
    while len(batch) < limit:
        wait = wait_for_more(batch)
        if wait <= 0:
            return
        if deadline is None:
            deadline = loop.time() + wait
        left = deadline - loop.time()
        if left < MIN_FETCH_SECONDS:
            return
        try:
            batch += await sub.fetch(1, timeout=left)
            if len(batch) < limit:
                batch += await ready_messages(sub, limit - len(batch))
        except Exception:  # timed out, or the connection lost: book what is held
            return
