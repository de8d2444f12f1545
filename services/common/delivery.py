"""What happens to a consumed message once its handler has run: the delivery policy.

Pure (no I/O), so every rule is unit-tested without a server:

- handled: ack;
- undecodable, or the handler raised :class:`PermanentError` (invalid, refused for good):
  dead-letter at once, nothing can ever make it succeed;
- the handler failed because something it needs is unavailable (a peer service, Postgres,
  NATS, a timeout; see :func:`is_transient`): retry with back-off for as long as it takes.
  Such a message is real work: dead-lettering it would lose a decision, a verdict or a
  tick. A handler that must stop waiting at some point (a decision whose cycle is over)
  decides that itself and answers for the message instead of raising;
- any other error (a bug, something unforeseen): retry a few times, then dead-letter, so
  one poison message cannot hold a consumer forever.
"""

from __future__ import annotations

from dataclasses import dataclass

from nats import errors as nats_errors
from nats.js import errors as js_errors

from services.common.bus_errors import PermanentError, TransientError

DEFAULT_RETRY_DELAYS: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0, 5.0)

# What nats-py raises while the server is away or restarting; OSError covers refused and
# reset sockets and every timeout (TimeoutError and nats' own derive from it).
_NATS_UNAVAILABLE: tuple[type[BaseException], ...] = (
    nats_errors.ConnectionClosedError,
    nats_errors.ConnectionReconnectingError,
    nats_errors.ConnectionDrainingError,
    nats_errors.NoRespondersError,
    nats_errors.NoServersError,
    nats_errors.OutboundBufferLimitError,
    nats_errors.StaleConnectionError,
    nats_errors.FlushTimeoutError,
    js_errors.ServiceUnavailableError,
)


def is_transient(error: BaseException) -> bool:
    """True when ``error`` (or what it was raised from) says a dependency is unavailable."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, PermanentError):
            return False
        if isinstance(current, (TransientError, OSError, *_NATS_UNAVAILABLE)):
            return True
        seen.add(id(current))
        current = current.__cause__
    return False


@dataclass(frozen=True)
class Ack:
    """Handled: acknowledge."""


@dataclass(frozen=True)
class Retry:
    """Ask for the message again after ``delay`` seconds."""

    delay: float
    transient: bool


@dataclass(frozen=True)
class DeadLetter:
    """Never going to succeed: to the dead-letter subject, then terminate it."""

    reason: str  # malformed | rejected | max_deliver
    error: str


Settlement = Ack | Retry | DeadLetter

ACK = Ack()


@dataclass(frozen=True)
class DeliveryPolicy:
    """How often and how long a failing message is retried."""

    retry_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS
    # Deliveries an unforeseen error gets before the message is dead-lettered.
    max_failures: int = 5

    def __post_init__(self) -> None:
        if not self.retry_delays or any(d < 0 for d in self.retry_delays):
            raise ValueError("retry_delays needs at least one delay, none negative")
        if self.max_failures < 1:
            raise ValueError("max_failures must be at least 1")

    def delay(self, num_delivered: int) -> float:
        """Back-off before delivery ``num_delivered + 1``; the last delay repeats."""
        return self.retry_delays[min(max(num_delivered, 1), len(self.retry_delays)) - 1]

    def settle(self, error: BaseException | None, num_delivered: int) -> Settlement:
        """What to do with a message after delivery ``num_delivered`` ended with ``error``."""
        if error is None:
            return ACK
        if isinstance(error, PermanentError):
            return DeadLetter("rejected", str(error))
        if is_transient(error):
            return Retry(self.delay(num_delivered), transient=True)
        if num_delivered >= self.max_failures:
            return DeadLetter("max_deliver", repr(error))
        return Retry(self.delay(num_delivered), transient=False)

    @staticmethod
    def malformed(error: str) -> DeadLetter:
        return DeadLetter("malformed", error)
