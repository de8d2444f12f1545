"""Fan-out of WebSocket messages: one producer, many clients, each with a bounded queue.

The hub does no I/O. A client whose queue is full is dropped (its ``ended`` event is
set and its WebSocket session closes it), so one slow reader never delays the others.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

from pydantic import BaseModel

from services.common.clock import Clock
from services.gateway.metrics import GatewayMetrics
from services.gateway.protocol import EventType, WsMessage

DEFAULT_QUEUE_SIZE = 256


# WebSocket close codes (RFC 6455) a session uses when the hub ends it.
CLOSE_GOING_AWAY = 1001
CLOSE_TOO_SLOW = 1008


class Client:
    """One connected WebSocket client's mailbox."""

    def __init__(self, queue_size: int) -> None:
        self.id = uuid.uuid4().hex
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=queue_size)
        self.ended = asyncio.Event()
        self.close_code = CLOSE_GOING_AWAY
        self.close_reason = ""

    def end(self, code: int, reason: str) -> None:
        """Ask the client's session to close the connection."""
        self.close_code = code
        self.close_reason = reason
        self.ended.set()


class Hub:
    def __init__(
        self, clock: Clock, metrics: GatewayMetrics, queue_size: int = DEFAULT_QUEUE_SIZE
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self._clock = clock
        self._metrics = metrics
        self._queue_size = queue_size
        self._clients: dict[str, Client] = {}
        self.messages_sent = 0
        self.clients_dropped = 0

    @property
    def queue_size(self) -> int:
        return self._queue_size

    @property
    def client_count(self) -> int:
        return len(self._clients)

    def now(self) -> datetime:
        return self._clock.now()

    def envelope(self, event: EventType, data: BaseModel) -> str:
        """The JSON text of one ``{type, data, timestamp}`` message."""
        message = WsMessage(
            type=event, data=data.model_dump(mode="json"), timestamp=self._clock.now()
        )
        return message.model_dump_json()

    def connect(self) -> Client:
        client = Client(self._queue_size)
        self._clients[client.id] = client
        self._metrics.ws_clients.set(len(self._clients))
        return client

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
        for client in list(self._clients.values()):
            try:
                client.queue.put_nowait(text)
            except asyncio.QueueFull:
                self._drop(client, f"too slow: more than {self._queue_size} messages queued")

    def close_all(self, reason: str = "server shutting down") -> None:
        """End every session (on shutdown), without counting them as dropped."""
        for client in list(self._clients.values()):
            client.end(CLOSE_GOING_AWAY, reason)
            self.disconnect(client)

    def _drop(self, client: Client, reason: str) -> None:
        client.end(CLOSE_TOO_SLOW, reason)
        self.disconnect(client)
        self.clients_dropped += 1
        self._metrics.ws_clients_dropped.inc()
