"""Dead letters: the one writer every consumer uses, and what an operator does with them.

A dead letter is the original message's bytes, published to ``arena.dlq.<service>`` (stream
``ARENA_DLQ``) with headers saying where it came from and why it can never succeed. An
operator lists them, re-drives one to its original subject once the cause is fixed, or
drops it (``python -m services.ledger dlq``).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime

from nats.aio.msg import Msg
from nats.js.api import RawStreamMsg
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from services.common import subjects
from services.common.bus_metrics import BusMetrics

log = logging.getLogger(__name__)

MSG_ID = "Nats-Msg-Id"
DLQ_SUBJECT = "Arena-Dlq-Subject"
DLQ_ERROR = "Arena-Dlq-Error"
DLQ_REASON = "Arena-Dlq-Reason"
DLQ_CONSUMER = "Arena-Dlq-Consumer"
DLQ_DELIVERIES = "Arena-Dlq-Deliveries"
DLQ_MSG_ID = "Arena-Dlq-Msg-Id"
DLQ_REDRIVEN_FROM = "Arena-Redriven-From"

MAX_ERROR_CHARS = 1000


class DeadLetterWriter:
    """Sends what can never succeed to this service's dead-letter subject, and counts it."""

    def __init__(self, js: JetStreamContext, service: str, metrics: BusMetrics) -> None:
        self._js = js
        self._subject = subjects.dead_letter(service)
        self._metrics = metrics

    async def send(self, consumer: str, msg: Msg, reason: str, error: str) -> None:
        """Publish ``msg`` as a dead letter; raises when the publish fails (not counted)."""
        log.error(
            "dead-lettering a message on %s for %s (%s): %s", msg.subject, consumer, reason, error
        )
        headers = {
            DLQ_SUBJECT: msg.subject,
            DLQ_ERROR: error[:MAX_ERROR_CHARS],
            DLQ_REASON: reason,
            DLQ_CONSUMER: consumer,
        }
        original = (msg.header or {}).get(MSG_ID)
        if original:
            headers[DLQ_MSG_ID] = original
            headers[MSG_ID] = f"dlq:{consumer}:{original}"
        with contextlib.suppress(Exception):  # only JetStream messages carry metadata
            headers[DLQ_DELIVERIES] = str(msg.metadata.num_delivered)
        await self._js.publish(self._subject, msg.data, headers=headers)
        self._metrics.dead_lettered.labels(consumer, reason).inc()


@dataclass(frozen=True)
class Letter:
    """One dead letter as an operator sees it."""

    seq: int
    at: datetime | None
    subject: str  # the original subject
    consumer: str
    reason: str
    error: str
    deliveries: str
    msg_id: str | None  # the original Nats-Msg-Id
    data: bytes


def _letter(raw: RawStreamMsg) -> Letter:
    headers = raw.headers or {}
    return Letter(
        seq=raw.seq or 0,
        at=getattr(raw, "time", None),
        subject=headers.get(DLQ_SUBJECT, "?"),
        consumer=headers.get(DLQ_CONSUMER, "?"),
        reason=headers.get(DLQ_REASON, "?"),
        error=headers.get(DLQ_ERROR, ""),
        deliveries=headers.get(DLQ_DELIVERIES, "-"),
        msg_id=headers.get(DLQ_MSG_ID),
        data=raw.data or b"",
    )


class DeadLetterBox:
    """The dead-letter stream, for an operator: list, re-drive, drop."""

    def __init__(self, js: JetStreamContext) -> None:
        self._js = js

    async def letters(self) -> list[Letter]:
        info = await self._js.stream_info(subjects.DLQ_STREAM)
        state = info.state
        found: list[Letter] = []
        if not state.messages:
            return found
        for seq in range(state.first_seq, state.last_seq + 1):
            try:
                raw = await self._js.get_msg(subjects.DLQ_STREAM, seq)
            except NotFoundError:
                continue  # dropped earlier
            found.append(_letter(raw))
        return found

    async def get(self, seq: int) -> Letter:
        try:
            return _letter(await self._js.get_msg(subjects.DLQ_STREAM, seq))
        except NotFoundError as exc:
            raise LookupError(f"no dead letter with sequence {seq}") from exc

    async def replay(self, seq: int) -> str:
        """Publish letter ``seq`` again on its original subject and remove it from the DLQ.

        It goes out under an id of its own (the original's plus the letter's sequence), so
        JetStream takes it even within the duplicate window of the original; what it does
        is still done once, since every effect of the arena is keyed by its natural id
        (cycle, decision, tick, call), not only by the message id.
        """
        letter = await self.get(seq)
        msg_id = f"{letter.msg_id or letter.subject}:redrive:{seq}"
        headers = {MSG_ID: msg_id, DLQ_REDRIVEN_FROM: letter.msg_id or ""}
        try:
            await self._js.find_stream_name_by_subject(letter.subject)
        except NotFoundError as exc:
            raise LookupError(
                f"{seq}: {letter.subject} is not an event subject (a request or a listener's "
                "message, which nobody keeps): it cannot be re-driven; drop it"
            ) from exc
        ack = await self._js.publish(letter.subject, letter.data, headers=headers)
        await self._js.delete_msg(subjects.DLQ_STREAM, seq)
        if ack.duplicate:
            return f"{seq}: already re-driven to {letter.subject}; removed from the DLQ"
        return f"{seq}: re-driven to {letter.subject} (stream sequence {ack.seq})"

    async def drop(self, seq: int) -> str:
        await self.get(seq)
        await self._js.delete_msg(subjects.DLQ_STREAM, seq)
        return f"{seq}: dropped"
