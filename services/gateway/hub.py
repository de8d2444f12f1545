"""Fan-out of WebSocket messages: one producer, many clients, each with a bounded mailbox.

The hub does no I/O. It admits at most ``max_clients``. A client whose mailbox is full,
by message count or by bytes, is dropped (its ``ended`` event is set and its WebSocket
session closes it), so one slow reader never delays the others nor holds more than its
share of the gateway's memory.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from pydantic import BaseModel

from services.common.clock import Clock
from services.gateway.metrics import (
    DROPPED_BYTES,
    DROPPED_QUEUE,
    REFUSED_LIMIT,
    REFUSED_ORIGIN,
    GatewayMetrics,
)
from services.gateway.protocol import EventType, WsMessage

DEFAULT_QUEUE_SIZE = 256
DEFAULT_BUFFER_BYTES = 1024 * 1024
DEFAULT_MAX_CLIENTS = 500
DEFAULT_SEND_TIMEOUT = 5.0


# WebSocket close codes (RFC 6455) a session uses when the hub ends or refuses it.
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY_VIOLATION = 1008
CLOSE_TOO_SLOW = CLOSE_POLICY_VIOLATION
CLOSE_TRY_AGAIN_LATER = 1013


@dataclass(frozen=True)
class HubLimits:
    """What one client may cost: its place, its queued messages and bytes, its send time."""

    queue_size: int = DEFAULT_QUEUE_SIZE
    buffer_bytes: int = DEFAULT_BUFFER_BYTES
    max_clients: int = DEFAULT_MAX_CLIENTS
    send_timeout: float = DEFAULT_SEND_TIMEOUT

    def __post_init__(self) -> None:
        for name in ("queue_size", "buffer_bytes", "max_clients"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.send_timeout <= 0:
            raise ValueError("send_timeout must be positive")


class Drop(NamedTuple):
    """Why a client is dropped: ``kind`` labels the metric, ``reason`` goes to the client."""

    kind: str
    reason: str


class Client:
    """One connected WebSocket client's mailbox."""

    def __init__(self, limits: HubLimits) -> None:
        self.id = uuid.uuid4().hex
        self._limits = limits
        self._queue: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        self.queued_bytes = 0
        self.ended = asyncio.Event()
        self.close_code = CLOSE_GOING_AWAY
        self.close_reason = ""

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    def offer(self, text: str, size: int) -> Drop | None:
        """Queue one message of ``size`` bytes; returns why it does not fit, or None."""
        limits = self._limits
        if self._queue.qsize() >= limits.queue_size:
            return Drop(DROPPED_QUEUE, f"too slow: more than {limits.queue_size} messages queued")
        # An empty mailbox takes any one message, so a message larger than the whole
        # buffer still reaches a client that keeps up.
        if self.queued_bytes and self.queued_bytes + size > limits.buffer_bytes:
            return Drop(DROPPED_BYTES, f"too slow: more than {limits.buffer_bytes} bytes queued")
        self._queue.put_nowait((text, size))
        self.queued_bytes += size
        return None

    async def next(self) -> str:
        """The oldest queued message, waiting for one."""
        text, size = await self._queue.get()
        self.queued_bytes -= size
        return text

    def end(self, code: int, reason: str) -> None:
        """Ask the client's session to close the connection."""
        self.close_code = code
        self.close_reason = reason
        self.ended.set()


class Hub:
    def __init__(
        self, clock: Clock, metrics: GatewayMetrics, limits: HubLimits | None = None
    ) -> None:
        self._clock = clock
        self._metrics = metrics
        self.limits = limits or HubLimits()
        self._clients: dict[str, Client] = {}
        self.messages_sent = 0
        self.clients_dropped = 0
        self.clients_refused = 0
        self.origins_refused = 0

    @property
    def client_count(self) -> int:
        return len(self._clients)

    @property
    def full_reason(self) -> str:
        """The close reason of a client refused because the hub is full."""
        return f"server full: at most {self.limits.max_clients} WebSocket clients; try again later"

    def now(self) -> datetime:
        return self._clock.now()

    def envelope(self, event: EventType, data: BaseModel) -> str:
        """The JSON text of one ``{type, data, timestamp}`` message."""
        message = WsMessage(
            type=event, data=data.model_dump(mode="json"), timestamp=self._clock.now()
        )
        return message.model_dump_json()

    def connect(self) -> Client | None:
        """Register a new client, or None (counted as refused) when the hub is full."""
        if len(self._clients) >= self.limits.max_clients:
            self.clients_refused += 1
            self._metrics.ws_clients_refused.labels(REFUSED_LIMIT).inc()
            return None
        client = Client(self.limits)
        self._clients[client.id] = client
        self._metrics.ws_clients.set(len(self._clients))
        return client

    def refuse_origin(self) -> None:
        """A browser page from an origin that is not allowed was turned away."""
        self.origins_refused += 1
        self._metrics.ws_clients_refused.labels(REFUSED_ORIGIN).inc()

    def disconnect(self, client: Client) -> None:
        if self._clients.pop(client.id, None) is not None:
            self._metrics.ws_clients.set(len(self._clients))

    def record_sent(self) -> None:
        """A session delivered one message to its client."""
        self.messages_sent += 1
        self._metrics.ws_messages_sent.inc()

    def broadcast(self, event: EventType, data: BaseModel) -> None:
        """Queue one message for every client; never waits."""
        if not self._clients:
            return
        text = self.envelope(event, data)  # serialised once, whatever the audience
        size = len(text.encode())  # what the socket will carry, not the character count
        for client in list(self._clients.values()):
            drop = client.offer(text, size)
            if drop is not None:
                self.drop(client, drop)

    def drop(self, client: Client, drop: Drop) -> None:
        """End a client that does not keep up (close 1008 with the reason)."""
        if client.ended.is_set():
            return  # already ended, e.g. by shutdown: not a drop
        client.end(CLOSE_TOO_SLOW, drop.reason)
        self.disconnect(client)
        self.clients_dropped += 1
        self._metrics.ws_clients_dropped.labels(drop.kind).inc()

    def close_all(self, reason: str = "server shutting down") -> None:
        """End every session (on shutdown), without counting them as dropped."""
        for client in list(self._clients.values()):
            client.end(CLOSE_GOING_AWAY, reason)
            self.disconnect(client)
