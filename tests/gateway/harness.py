"""The gateway on a real nats-server and a real uvicorn port, with stand-in responders,
and a WebSocket client that records what it receives."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.typing import Origin

from bench import gateway_memory
from services.common.bus import Bus
from services.common.clock import Clock, ManualClock
from services.common.runner import ServiceHost
from services.common.settings import Settings
from services.gateway.service import build
from tests.gateway import standins
from tests.support import eventually, running

NOW = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
SHORT_TIMEOUT = 0.3
ADMIN_TOKEN = "s3cret-admin-token"
LINEUP = Path(__file__).with_name("agents.toml")

MakeSettings = Callable[..., Settings]


@dataclass
class Gateway:
    http: httpx.AsyncClient
    host: ServiceHost
    settings: Settings
    state: standins.ArenaState

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.gateway_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.settings.gateway_port}/ws"

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        return self.host.registry.get_sample_value(name, labels or {})


@contextlib.asynccontextmanager
async def gateway(
    nats_url: str,
    make_settings: MakeSettings,
    *,
    ledger: bool = True,
    market: bool = True,
    state: standins.ArenaState | None = None,
    clock: Clock | None = None,
    **env: Any,
) -> AsyncIterator[Gateway]:
    arena = state or standins.ArenaState()
    responders: list[Bus] = []
    if ledger:
        responders.append(await standins.ledger(nats_url, arena))
    if market:
        responders.append(await standins.market(nats_url, arena))
    env.setdefault("ARENA_AGENTS_FILE", str(LINEUP))
    env.setdefault("ARENA_REQUEST_TIMEOUT", SHORT_TIMEOUT)
    settings = make_settings(**env)
    try:
        async with (
            running("gateway", build, settings, clock or ManualClock(NOW)) as host,
            httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{settings.gateway_port}", timeout=5
            ) as http,
        ):
            yield Gateway(http, host, settings, arena)
    finally:
        for bus in responders:
            await bus.close()


@dataclass
class WsClient:
    connection: ClientConnection
    messages: list[dict[str, Any]] = field(default_factory=list)

    def has(self, count: int) -> bool:
        return len(self.messages) >= count

    def types(self) -> list[str]:
        return [m["type"] for m in self.messages]


@contextlib.asynccontextmanager
async def ws_client(url: str, origin: str | None = None) -> AsyncIterator[WsClient]:
    """A client that reads everything; ``origin`` is the header a browser page would send."""
    async with websockets.connect(
        url, origin=Origin(origin) if origin else None, max_size=None
    ) as connection:
        client = WsClient(connection)

        async def collect() -> None:
            async for raw in connection:
                client.messages.append(json.loads(raw))

        task = asyncio.create_task(collect())
        try:
            # Greeted means registered with the hub: later events reach this client.
            await eventually(lambda: len(client.messages) >= 2, what="connection and initial_data")
            yield client
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                await task


def stalled_client(port: int, receive_buffer: int | None = 4096) -> socket.socket:
    """A WebSocket client that completes the handshake (without compression) and then
    never reads again (see :func:`bench.gateway_memory.stalled_client`)."""
    sock, status = gateway_memory.stalled_client(port, deflate=False, receive_buffer=receive_buffer)
    assert status == 101, status
    return sock
