"""The errors of the bus: what ``Bus.request`` raises and what handlers raise to steer it."""

from __future__ import annotations

from services.common.contracts import ErrorReply


class BusError(Exception):
    """Base of the errors ``Bus.request`` raises."""


class TransientError(Exception):
    """Something the handler needs is unavailable for now: retry the message later.

    Raised (or raised from) by a handler, it makes the bus redeliver with back-off for
    as long as it takes, never dead-letter.
    """


class Unavailable(BusError, TransientError):
    """Nobody answered the request in time."""

    def __init__(self, subject: str, detail: str) -> None:
        super().__init__(f"no answer on {subject}: {detail}")
        self.subject = subject


class RemoteError(BusError):
    """The responder answered with an ``ErrorReply``."""

    def __init__(self, subject: str, reply: ErrorReply) -> None:
        super().__init__(f"{subject}: {reply.code}: {reply.message}")
        self.subject = subject
        self.reply = reply


class PermanentError(Exception):
    """Raised by a handler for a message that can never succeed: dead-letter it now."""


class NotFound(LookupError):
    """Raised by a request handler when the thing asked for does not exist."""


class BadRequest(ValueError):
    """Raised by a request handler for a request it cannot answer as asked."""
