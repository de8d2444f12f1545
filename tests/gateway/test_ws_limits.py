"""The WebSocket's bounds on real sockets: how many clients, which browser pages, and how
long and how much a client that stops reading may hold before it is dropped."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from functools import partial
from typing import Any

import psutil
import pytest
import websockets
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from bench.gateway_memory import realistic_snapshot
from services.common import subjects
from tests.gateway import standins
from tests.gateway.harness import (
    Gateway,
    MakeSettings,
    WsClient,
    gateway,
    stalled_client,
    ws_client,
)
from tests.support import eventually

SNAPSHOTS = 100  # ~9 MB in all: more than the kernel buffers of one connection can take


async def publish_snapshots(nats_url: str, count: int) -> None:
    snapshot = await realistic_snapshot()
    assert len(snapshot.model_dump_json()) > 85_000
    publisher = await standins.connect(nats_url, "publisher")
    try:
        for n in range(count):
            event = snapshot.model_copy(update={"cycle_id": f"c-{n}"})
            await publisher.publish(subjects.MARKET_SNAPSHOT, event, event.cycle_id)
    finally:
        await publisher.close()


def snapshots_received(client: WsClient) -> list[str]:
    return [m["data"]["cycle_id"] for m in client.messages if m["type"] == "market_snapshot"]


def read_until_closed(sock: socket.socket, timeout: float) -> int:
    """Read what the gateway had buffered until it closes the connection; bytes read.

    A reset counts as closed too: on a loaded machine the reading may start only after
    the kernel has already cut the connection (TCP_USER_TIMEOUT), discarding the backlog.
    """
    sock.settimeout(timeout)
    total = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(1 << 20)
        except ConnectionResetError:
            return total
        if not chunk:
            return total
        total += len(chunk)
    raise AssertionError(f"the gateway kept the connection open ({total} bytes read)")


def dropped(gw: Gateway) -> float:
    return sum(
        gw.sample("arena_gateway_ws_clients_dropped_total", {"reason": reason}) or 0
        for reason in ("queue", "bytes", "send_timeout")
    )


async def stats(gw: Gateway) -> dict[str, object]:
    answer: dict[str, object] = (await gw.http.get("/ws/stats")).json()
    return answer


# ------------------------------------------------------------------ how many clients


async def test_a_client_over_the_limit_is_refused_with_the_reason_and_others_keep_receiving(
    nats_url: str, make_settings: MakeSettings
) -> None:
    async with (
        gateway(nats_url, make_settings, ARENA_WS_MAX_CLIENTS=2) as gw,
        ws_client(gw.ws_url) as first,
        contextlib.AsyncExitStack() as second_stack,
    ):
        await second_stack.enter_async_context(ws_client(gw.ws_url))
        async with websockets.connect(gw.ws_url) as third:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await third.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1013  # try again later
        assert closed.value.rcvd.reason == (
            "server full: at most 2 WebSocket clients; try again later"
        )
        assert gw.sample("arena_gateway_ws_clients_refused_total", {"reason": "limit"}) == 1
        assert gw.sample("arena_gateway_ws_clients") == 2

        publisher = await standins.connect(nats_url, "publisher")
        await publisher.publish(subjects.MARKET_SNAPSHOT, standins.snapshot("c-1"), "c-1")
        await publisher.close()
        await eventually(lambda: snapshots_received(first) == ["c-1"], what="first gets c-1")
        assert not first.connection.close_code
        current = await stats(gw)
        assert (current["connected_clients"], current["max_clients"]) == (2, 2)
        assert current["clients_refused"] == 1

        # A place that frees up is taken by the next client.
        await second_stack.aclose()
        await eventually(lambda: gw.sample("arena_gateway_ws_clients") == 1, what="one left")
        async with ws_client(gw.ws_url) as fourth:
            assert fourth.types() == ["connection", "initial_data"]
        assert (await stats(gw))["clients_refused"] == 1


# ------------------------------------------------------------------ which pages


async def test_a_page_from_another_origin_is_refused_and_the_own_origin_accepted(
    gw: Gateway,
) -> None:
    port = gw.settings.gateway_port
    for origin in (f"http://127.0.0.1:{port}", f"http://localhost:{port}", None):
        async with ws_client(gw.ws_url, origin=origin) as client:
            assert client.types() == ["connection", "initial_data"], origin

    for foreign in ("https://evil.example", f"http://127.0.0.1:{port + 1}", "null"):
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(gw.ws_url, origin=Origin(foreign)):
                pass
        response = refused.value.response
        assert response.status_code == 403, foreign
        assert b"ARENA_WS_ALLOWED_ORIGINS" in response.body

    assert gw.sample("arena_gateway_ws_clients_refused_total", {"reason": "origin"}) == 3
    assert gw.sample("arena_gateway_ws_clients_refused_total", {"reason": "limit"}) == 0
    current = await stats(gw)
    assert (current["origins_refused"], current["connected_clients"]) == (3, 0)


async def test_configured_origins_replace_the_default(
    nats_url: str, make_settings: MakeSettings
) -> None:
    allowed = "https://arena.example.com"
    async with gateway(nats_url, make_settings, ARENA_WS_ALLOWED_ORIGINS=allowed) as gw:
        async with ws_client(gw.ws_url, origin="https://ARENA.example.com:443") as client:
            assert client.types() == ["connection", "initial_data"]
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(
                gw.ws_url, origin=Origin(f"http://127.0.0.1:{gw.settings.gateway_port}")
            ):
                pass
        assert refused.value.response.status_code == 403


# ------------------------------------------------------------------ slow readers


async def _stalled_reader_is_dropped(gw: Gateway, nats_url: str, reason: str) -> list[str]:
    """A reading client and a stalled one get the same snapshots; the stalled one must be
    dropped for ``reason``, and its connection closed once it reads again (a client that
    never does is cut by the kernel, TCP_USER_TIMEOUT). Returns what the reader got."""
    async with ws_client(gw.ws_url) as reader:
        # The kernel's receive buffer: large enough to read the backlog quickly at the end.
        stalled = await asyncio.to_thread(stalled_client, gw.settings.gateway_port, None)
        try:
            await eventually(
                lambda: gw.sample("arena_gateway_ws_clients") == 2, what="both connected"
            )
            await publish_snapshots(nats_url, SNAPSHOTS)
            await eventually(
                lambda: dropped(gw) >= 1, timeout=30, what="the stalled client dropped"
            )
            await eventually(partial(reader.has, 2 + SNAPSHOTS), timeout=60, what="every snapshot")
            assert not reader.connection.close_code, reader.connection.close_reason
            assert gw.sample("arena_gateway_ws_clients_dropped_total", {"reason": reason}) == 1
            current = await stats(gw)
            assert (current["connected_clients"], current["clients_dropped"]) == (1, 1)
            await asyncio.to_thread(read_until_closed, stalled, 30)
        finally:
            stalled.close()
        return snapshots_received(reader)


# A stalled reader is dropped by one bound while the others are far away: the time a send
# may take (queue bounds far away), or the bytes queued for it (a buffer of five or six
# snapshots, sends allowed two minutes).
@pytest.mark.parametrize(
    ("reason", "bounds", "other_reason"),
    [
        (
            "send_timeout",
            {"ARENA_WS_SEND_TIMEOUT": 0.5, "ARENA_WS_CLIENT_BUFFER_BYTES": 100_000_000},
            "bytes",
        ),
        (
            "bytes",
            {"ARENA_WS_SEND_TIMEOUT": 120, "ARENA_WS_CLIENT_BUFFER_BYTES": 500_000},
            "send_timeout",
        ),
    ],
)
async def test_a_client_that_never_reads_is_dropped_by_the_bound_it_passes(
    nats_url: str,
    make_settings: MakeSettings,
    reason: str,
    bounds: dict[str, Any],
    other_reason: str,
) -> None:
    async with gateway(nats_url, make_settings, ARENA_WS_QUEUE_SIZE=10_000, **bounds) as gw:
        received = await _stalled_reader_is_dropped(gw, nats_url, reason)
        assert received == [f"c-{n}" for n in range(SNAPSHOTS)]
        assert gw.sample("arena_gateway_ws_clients_dropped_total", {"reason": other_reason}) == 0


def held_by_gateway(port: int, peer: socket.socket) -> bool:
    """Whether the gateway (in this process) still holds its end of ``peer``'s connection."""
    peer_port = peer.getsockname()[1]
    return any(
        c.laddr and c.laddr.port == port and c.raddr and c.raddr.port == peer_port
        for c in psutil.Process().net_connections(kind="tcp")
    )


async def test_a_dropped_client_that_never_reads_again_is_cut_by_the_kernel(
    nats_url: str, make_settings: MakeSettings
) -> None:
    # Closing waits for the socket buffers to drain, which for this client is never;
    # TCP_USER_TIMEOUT (six send timeouts: 3 s here) ends the wait.
    async with gateway(
        nats_url,
        make_settings,
        ARENA_WS_SEND_TIMEOUT=0.5,
        ARENA_WS_CLIENT_BUFFER_BYTES=100_000_000,
        ARENA_WS_QUEUE_SIZE=10_000,
    ) as gw:
        port = gw.settings.gateway_port
        stalled = await asyncio.to_thread(stalled_client, port, None)
        try:
            await eventually(lambda: gw.sample("arena_gateway_ws_clients") == 1, what="connected")
            assert held_by_gateway(port, stalled)
            await publish_snapshots(nats_url, SNAPSHOTS)
            await eventually(
                lambda: (
                    gw.sample("arena_gateway_ws_clients_dropped_total", {"reason": "send_timeout"})
                    == 1
                ),
                what="the stalled client dropped",
            )
            await eventually(
                lambda: not held_by_gateway(port, stalled),
                timeout=20,
                what="the gateway's end of the connection closed",
            )
        finally:
            stalled.close()
