"""Durable pull consumers on the server: what one is, making or binding it, pulling from it.

:class:`ConsumerSpec` describes a durable; :func:`subscribe` creates it (or binds to the
one already there, made anew when its subjects changed); :func:`ready_messages` takes
what the server has ready without waiting for more. :mod:`consumers` runs the loops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from services.common import subjects
from services.common.delivery import DEFAULT_RETRY_DELAYS

log = logging.getLogger(__name__)

# How long after its expiry a gathering pull's end (its 408) is waited for.
LINGER_GRACE_SECONDS = 0.5


@dataclass(frozen=True)
class ConsumerSpec:
    """A durable pull consumer."""

    durable: str
    filter_subject: str
    # More subjects for the same consumer, delivered interleaved in stream order.
    more_subjects: tuple[str, ...] = ()
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
    # One by one: messages fetched together on different subjects (different agents, on
    # per-agent subjects) are handled concurrently, those on one subject still in order.
    concurrent_subjects: bool = False
    # For records nobody waits on: gather up to ``batch`` messages for this long with one
    # pull, instead of handing each over the moment it arrives (two pulls a message).
    linger_seconds: float | None = None

    @property
    def subjects(self) -> tuple[str, ...]:
        return (self.filter_subject, *self.more_subjects)


_DELIVER = {
    "all": DeliverPolicy.ALL,
    "last": DeliverPolicy.LAST_PER_SUBJECT,
    "new": DeliverPolicy.NEW,
}


async def subscribe(
    js: JetStreamContext, spec: ConsumerSpec, resume_after: int | None = None
) -> JetStreamContext.PullSubscription:
    """Create ``spec``'s durable (or bind to it) and subscribe to it.

    ``resume_after``: see :meth:`~services.common.consumers.Consumers.in_batches`.
    """
    several = len(spec.subjects) > 1
    config = ConsumerConfig(
        durable_name=spec.durable,
        filter_subject=None if several else spec.filter_subject,
        filter_subjects=list(spec.subjects) if several else None,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=_DELIVER[spec.start],
        ack_wait=spec.ack_wait_seconds,
        max_deliver=-1,
        max_ack_pending=spec.max_ack_pending,
    )
    if resume_after is not None:
        last = (await js.stream_info(subjects.STREAM)).state.last_seq
        if resume_after > last:
            # Not this stream's position (the stream was made anew): read it all again;
            # what was applied already is recognised by its id and changes nothing.
            log.warning(
                "%s: position %d is past the stream's end (%d): reading from the start",
                spec.durable,
                resume_after,
                last,
            )
            resume_after = 0
        config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
        config.opt_start_seq = resume_after + 1
        with contextlib.suppress(NotFoundError):
            await js.delete_consumer(subjects.STREAM, spec.durable)
        await js.add_consumer(subjects.STREAM, config)
        return await js.pull_subscribe_bind(durable=spec.durable, stream=subjects.STREAM)
    try:
        info = await js.consumer_info(subjects.STREAM, spec.durable)
        existing = tuple(info.config.filter_subjects or [info.config.filter_subject or ""])
        if sorted(existing) != sorted(spec.subjects):
            await js.delete_consumer(subjects.STREAM, spec.durable)
            raise NotFoundError
    except NotFoundError:
        await js.add_consumer(subjects.STREAM, config)
    return await js.pull_subscribe_bind(durable=spec.durable, stream=subjects.STREAM)


async def ready_messages(
    sub: JetStreamContext.PullSubscription, limit: int, timeout: float = 1.0
) -> list[Msg]:
    """Up to ``limit`` messages the server has ready now, never waiting for more.

    A no-wait pull request: the server sends what it has, then a 404 status. (nats-py's
    ``fetch`` only asks that way when it already holds messages; asked for N while none
    are ready, it lingers until N arrive or its timeout passes, which costs a batch
    consumer that timeout after every quiet moment.) It goes through the subscription's
    pull subject and inbox, nats-py's own (``_nms``, ``_deliver``, ``_sub``).
    """
    found: list[Msg] = []
    # 404 no messages, 408 expired, 409: nothing more now.
    await _pull(sub, {"batch": limit, "no_wait": True}, found, limit, lambda: timeout)
    return found


async def gathered_messages(
    sub: JetStreamContext.PullSubscription, limit: int, linger: float
) -> list[Msg]:
    """Up to ``limit`` messages, gathered for at most ``linger`` seconds with one pull
    request (the server ends it with a 408 status when it expires short of ``limit``).

    What an earlier request left in the subscription's queue comes first: its messages are
    returned at once, its statuses dropped (they must not end this request). A request
    lost with the connection is given up shortly after it would have expired; the caller
    asks again. Any other end the server gives it (the durable gone, JetStream away)
    raises :class:`PullRefused`, so the caller backs off rather than asking again at once.
    Cancelled, it gives back what it gathered (redelivered now, not after the ack wait).
    Through the same nats-py internals as :func:`ready_messages`.
    """
    found = _left_in_queue(sub, limit)
    if found:
        return found
    deadline = time.monotonic() + linger + LINGER_GRACE_SECONDS
    request = {"batch": limit, "expires": int(linger * 1_000_000_000)}
    try:
        ending = await _pull(sub, request, found, limit, lambda: deadline - time.monotonic())
    except asyncio.CancelledError:
        for msg in found:
            with contextlib.suppress(Exception):
                await msg.nak()
        raise
    status = None if ending is None else JetStreamContext.is_status_msg(ending)
    if ending is not None and status != "408" and not found:  # 408: the request expired
        raise PullRefused(f"pull on {sub._nms} ended with {status}: {ending.headers}")
    return found


async def _pull(
    sub: JetStreamContext.PullSubscription,
    request: Mapping[str, object],
    found: list[Msg],
    limit: int,
    wait: Callable[[], float],
) -> Msg | None:
    """Send the pull ``request`` and add its messages to ``found`` until there are
    ``limit``, no message comes within ``wait()`` seconds, or a status other than a
    heartbeat ends it; returns that status message (None for the other two ends)."""
    await sub._nc.publish(sub._nms, json.dumps(request).encode(), sub._deliver)
    while len(found) < limit:
        timeout = wait()
        if timeout <= 0:
            return None
        try:
            msg = await sub._sub.next_msg(timeout=timeout)
        except TimeoutError:
            return None
        status = JetStreamContext.is_status_msg(msg)
        if status is None:
            found.append(msg)
        elif status != "100":
            return msg
    return None


class PullRefused(RuntimeError):
    """The server ended a pull request with an error status."""


def _left_in_queue(sub: JetStreamContext.PullSubscription, limit: int) -> list[Msg]:
    """Messages already in the subscription's queue (up to ``limit``), its statuses
    dropped, as nats-py's own fetch does before it asks."""
    queue = sub._sub._pending_queue
    found: list[Msg] = []
    while len(found) < limit and not queue.empty():
        msg = queue.get_nowait()
        sub._sub._pending_size -= len(msg.data)
        if JetStreamContext.is_status_msg(msg) is None:
            found.append(msg)
    return found
