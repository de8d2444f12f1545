"""Request-reply over core NATS: answering requests and asking for answers.

- :meth:`Replies.serve` answers requests in a queue group (replicas share the load); a
  handler's typed error becomes an :class:`ErrorReply` the caller turns back into one.
- :meth:`Replies.request` asks and raises typed errors; :meth:`Replies.request_bytes`
  takes a reply of any size, put back together when it came in parts.
:class:`~services.common.bus.Bus` is a :class:`Replies`: these are its request-reply methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from pydantic import ValidationError

from services.common.bus_errors import (
    BadRequest,
    BusError,
    NotFound,
    RemoteError,
    TransientError,
    Unavailable,
)
from services.common.channels import Request
from services.common.consumers import short_error
from services.common.contracts import ErrorReply, Message
from services.common.delivery import is_transient
from services.common.nats_connection import seen_by_server

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)
Q = TypeVar("Q", bound=Message)
R = TypeVar("R", bound=Message)

# The error code of a responder whose own dependency is down: the caller may try again.
UNAVAILABLE = "unavailable"

RequestHandler = Callable[[M], Awaitable[Message | bytes]]
# Dead-letters a request that cannot be read: (subject, message, error).
DeadLetterCore = Callable[[str, Msg, str], Awaitable[None]]

# A reply over the server's max payload goes out in parts, each with this header ("i/n",
# from 1); :meth:`Replies.request_bytes` puts them back together.
CHUNK_HEADER = "Arena-Chunk"
# Room left in each part for the header and the protocol line.
_CHUNK_ROOM = 1024


class Replies:
    """A service's requests and answers on one NATS connection."""

    def __init__(self, nc: NatsClient, service: str, dead_letter: DeadLetterCore) -> None:
        self._nc = nc
        self._service = service
        self._dead_letter = dead_letter
        self._answering: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------ answering

    async def serve(
        self,
        subject: str,
        request_type: type[M],
        handler: RequestHandler[M],
        *,
        concurrency: int = 1,
    ) -> None:
        """Answer requests on ``subject`` (queue group, so replicas share the load).

        ``concurrency``: how many requests are answered at once (a handler that waits on a
        database answers the next caller meanwhile); 1 answers them one after the other.
        """
        limit = asyncio.Semaphore(concurrency)

        async def answer_then_release(msg: Msg) -> None:
            try:
                await answer(msg)
            finally:
                limit.release()

        async def on_request(msg: Msg) -> None:
            if concurrency == 1:
                await answer(msg)
                return
            # A slot first, so what waits beyond the limit stays in nats' own buffer.
            await limit.acquire()
            task = asyncio.create_task(answer_then_release(msg), name=f"answer:{subject}")
            self._answering.add(task)
            task.add_done_callback(self._answering.discard)

        async def answer(msg: Msg) -> None:
            reply: Message | bytes
            try:
                request = request_type.model_validate_json(msg.data or b"{}")
            except ValidationError as exc:
                await self._dead_letter(subject, msg, short_error(exc))
                reply = ErrorReply(code="bad_request", message=short_error(exc))
            else:
                reply = await self._answer(subject, handler, request)
            if msg.reply:
                data = reply if isinstance(reply, bytes) else reply.to_bytes()
                with contextlib.suppress(Exception):  # the caller's connection may be gone
                    await self._respond(msg, data)

        await self._nc.subscribe(subject, queue=f"{self._service}-q", cb=on_request)
        await seen_by_server(self._nc)  # the server knows the subscription on return

    async def _answer(
        self, subject: str, handler: RequestHandler[M], request: M
    ) -> Message | bytes:
        """The handler's reply, or the :class:`ErrorReply` its error stands for."""
        try:
            return await handler(request)
        except NotFound as exc:
            return ErrorReply(code="not_found", message=str(exc))
        except BadRequest as exc:
            return ErrorReply(code="bad_request", message=str(exc))
        except TransientError as exc:
            return ErrorReply(code=UNAVAILABLE, message=f"{self._service}: {exc}")
        except Exception:
            # Details stay in this service's log; the caller gets a reference to it.
            ref = uuid.uuid4().hex[:12]
            log.exception("request on %s failed (ref %s)", subject, ref)
            return ErrorReply(code="internal", message=f"{self._service} failed (log ref {ref})")

    async def serve_channel(
        self,
        channel: Request[Q, R],
        handler: Callable[[Q], Awaitable[R | bytes]],
        *,
        concurrency: int = 1,
    ) -> None:
        """Answer the catalogue's ``channel`` (see :meth:`serve`): the request and reply
        types are the entry's. A handler may return its reply already encoded."""
        await self.serve(channel.subject, channel.request, handler, concurrency=concurrency)

    async def _respond(self, msg: Msg, data: bytes) -> None:
        size = max(self._nc.max_payload - _CHUNK_ROOM, _CHUNK_ROOM)
        if len(data) <= size:
            await msg.respond(data)
            return
        parts = [data[i : i + size] for i in range(0, len(data), size)]
        for n, part in enumerate(parts, start=1):
            await self._nc.publish(msg.reply, part, headers={CHUNK_HEADER: f"{n}/{len(parts)}"})

    # ------------------------------------------------------------ asking

    async def request_bytes(self, subject: str, message: Message, timeout: float = 2.0) -> bytes:
        """The reply as it came, put back together when it came in parts; a reply of any
        size. The caller reads it (see :func:`reply_error` for an :class:`ErrorReply`)."""
        inbox = self._nc.new_inbox()
        sub = await self._nc.subscribe(inbox)
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            try:
                await self._nc.publish(subject, message.to_bytes(), reply=inbox)
                parts: dict[int, bytes] = {}
                expected = 1
                while len(parts) < expected:
                    left = deadline - asyncio.get_running_loop().time()
                    msg = await sub.next_msg(timeout=max(left, 0.001))
                    headers = msg.headers or {}
                    if headers.get("Status") == "503":
                        raise Unavailable(subject, "no service is listening")
                    chunk = headers.get(CHUNK_HEADER)
                    if chunk is None:
                        return bytes(msg.data)
                    index, expected = (int(x) for x in chunk.split("/"))
                    parts[index] = bytes(msg.data)
            except NatsTimeoutError as exc:
                raise Unavailable(subject, f"timed out after {timeout:g}s") from exc
            except BusError:
                raise
            except Exception as exc:
                if not is_transient(exc):
                    raise
                raise Unavailable(subject, f"NATS unavailable ({exc!r})") from exc
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        return b"".join(parts[n] for n in range(1, expected + 1))

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
            raise reply_error(subject, msg.data) from None

    async def ask(self, channel: Request[Q, R], message: Q, timeout: float = 2.0) -> R:
        """Ask the catalogue's ``channel``; the answer is read as the entry's reply type."""
        return await self.request(channel.subject, message, channel.reply, timeout)

    @staticmethod
    def reply_error(subject: str, data: bytes) -> BusError:
        """The error a reply that is not the expected answer stands for."""
        return reply_error(subject, data)


def reply_error(subject: str, data: bytes) -> BusError:
    """The error a reply that is not the expected answer stands for."""
    try:
        error = ErrorReply.model_validate_json(data)
    except ValidationError as exc:
        return BusError(f"{subject}: unreadable reply: {short_error(exc)}")
    if error.code == UNAVAILABLE:
        return Unavailable(subject, error.message)
    return RemoteError(subject, error)
