"""Gateway memory with WebSocket clients that never read.

``python -m bench.gateway_memory`` starts a nats-server, the ledger and market stand-ins
and the real gateway (``python -m services.gateway``) as in ``bench.gateway``, then:

- opens ``--clients`` (200) raw WebSocket connections that complete the handshake and
  never read again (a small receive buffer, so the TCP buffers fill at once), plus one
  client that reads everything;
- publishes ``--snapshots`` (200) market snapshots of realistic size (the simulator's,
  six symbols with 100 candles each: about 91 KB of JSON per message) on NATS;
- samples the gateway's resident memory (RSS) throughout and prints it at rest, with the
  clients connected, at its peak while broadcasting, and ``--settle`` (40) seconds later,
  with the connections the gateway still holds, the kernel's TCP buffer memory
  (machine-wide) and what ``/ws/stats`` and ``/metrics`` say about dropped and refused
  clients.

``--deflate`` makes the stalled clients offer per-message compression, as browsers do;
``--set NAME=VALUE`` passes a setting to the gateway.

The reading client must receive every snapshot: stalled clients may cost memory up to
their bound, never other clients' messages.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import socket
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import websockets
from prometheus_client import CollectorRegistry

from bench.gateway import arena
from bench.measures import Better, Measure
from services.common import subjects
from services.common.bus import Bus, BusMetrics
from services.common.contracts import MarketSnapshot
from services.common.settings import DEFAULT_SYMBOLS
from services.market.simulator import SimulatorSource
from services.market.snapshot import build_snapshot

MB = 1024 * 1024


async def realistic_snapshot() -> MarketSnapshot:
    now = datetime(2025, 3, 1, tzinfo=UTC)
    data = await SimulatorSource(42, DEFAULT_SYMBOLS, now).snapshot_data(now)
    return build_snapshot(
        cycle_id="bench-0",
        taken_at=now,
        decision_deadline=now + timedelta(minutes=4),
        source="simulator",
        data=data,
    )


# What browsers offer: with it the gateway keeps a compressor per connection.
DEFLATE = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"


def stalled_client(
    port: int, deflate: bool, receive_buffer: int | None = 4096
) -> tuple[socket.socket, int]:
    """A WebSocket handshake, then nothing is ever read. Returns (socket, HTTP status).

    With a tiny receive buffer the socket buffers fill after a few kilobytes, but the
    window stays so small that reading later crawls; ``None`` keeps the kernel's.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\n{DEFLATE if deflate else ''}\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            break
        head += chunk
    return sock, int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else 0


def kernel_tcp_mb() -> float | None:
    """Memory the kernel holds for TCP buffers, machine-wide (Linux), in MB."""
    try:
        lines = Path("/proc/net/sockstat").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("TCP:"):
            fields = line.split()
            return int(fields[fields.index("mem") + 1]) * os.sysconf("SC_PAGE_SIZE") / MB
    return None


class RssSampler:
    """The gateway's RSS every ``interval`` seconds, with the peak seen."""

    def __init__(self, pid: int, port: int, interval: float = 0.05) -> None:
        self._process = psutil.Process(pid)
        self._port = port
        self._interval = interval
        self.peak = 0

    def now(self) -> int:
        rss = int(self._process.memory_info().rss)
        self.peak = max(self.peak, rss)
        return rss

    def connections(self) -> int:
        """Connections the gateway still holds on its port, whatever their state."""
        return sum(
            1
            for c in self._process.net_connections(kind="tcp")
            if c.laddr and c.laddr.port == self._port and c.status != psutil.CONN_LISTEN
        )

    async def run(self) -> None:
        while True:
            self.now()
            await asyncio.sleep(self._interval)


@dataclass(frozen=True)
class Load:
    clients: int
    snapshots: int
    interval: float
    settle: float
    deflate: bool


class Reader:
    """One client that reads everything, counting the snapshots it gets."""

    def __init__(self, expected: int) -> None:
        self.received = 0
        self.ready = asyncio.Event()
        self.complete = asyncio.Event()
        self._expected = expected

    async def run(self, port: int) -> None:
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws", max_size=None) as ws:
            async for raw in ws:
                text = raw if isinstance(raw, str) else raw.decode()
                if '"type":"initial_data"' in text:
                    self.ready.set()
                elif '"type":"market_snapshot"' in text:
                    self.received += 1
                    if self.received >= self._expected:
                        self.complete.set()


Row = tuple[str, int, int | None, float | None]  # label, RSS, connections, kernel TCP MB


@dataclass
class Outcome:
    rows: list[Row]
    statuses: list[int]
    received: int
    delivered: float
    stats: dict[str, Any]
    metrics: str


async def observe(load: Load, env: dict[str, str], snapshot: MarketSnapshot) -> Outcome:
    with (
        tempfile.TemporaryDirectory(prefix="bench-gateway-memory-") as tmp,
        arena(Path(tmp), env) as gw,
    ):
        sampler = RssSampler(gw.gateway_pid, gw.port)
        rows: list[Row] = []

        def look(label: str) -> None:
            rows.append((label, sampler.now(), sampler.connections(), kernel_tcp_mb()))

        look("at rest")
        reader = Reader(load.snapshots)
        reading = asyncio.create_task(reader.run(gw.port))
        await asyncio.wait_for(reader.ready.wait(), 30)
        opened = await asyncio.gather(
            *(asyncio.to_thread(stalled_client, gw.port, load.deflate) for _ in range(load.clients))
        )
        look(f"{load.clients} stalled clients connected")
        sampling = asyncio.create_task(sampler.run())
        bus = await Bus.connect(gw.nats_url, "bench", BusMetrics(CollectorRegistry()))
        started = time.perf_counter()
        try:
            for n in range(load.snapshots):
                event = snapshot.model_copy(update={"cycle_id": f"bench-{n}"})
                await bus.publish(subjects.MARKET_SNAPSHOT, event, event.cycle_id)
                await asyncio.sleep(load.interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reader.complete.wait(), 60)
            delivered = time.perf_counter() - started
            look(f"after {load.snapshots} snapshots")
            rows.append(("peak while broadcasting", sampler.peak, None, None))
            await asyncio.sleep(load.settle)  # the gateway's timeouts run meanwhile
            look(f"{load.settle:g} s later")
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.port}", timeout=5) as http:
                stats = (await http.get("/ws/stats")).json()
                metrics = (await http.get("/metrics")).text
        finally:
            sampling.cancel()
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reading
            await bus.close()
            for sock, _ in opened:
                sock.close()
    statuses = [status for _, status in opened]
    return Outcome(rows, statuses, reader.received, delivered, stats, metrics)


def report(load: Load, size: int, outcome: Outcome) -> None:
    upgraded = outcome.statuses.count(101)
    offer = "offering compression" if load.deflate else "without compression"
    print(
        f"snapshot message: {size / 1024:.1f} KB of JSON; {load.snapshots} sent, "
        f"one per {load.interval:g} s"
    )
    print(f"stalled clients ({offer}): {upgraded} upgraded, {load.clients - upgraded} not")
    print(f"{'gateway':<32} {'RSS MB':>8} {'connections':>12} {'kernel TCP MB':>14}")
    for label, rss, connections, kernel in outcome.rows:
        held = "" if connections is None else str(connections)
        tcp = "" if kernel is None else f"{kernel:.1f}"
        print(f"{label:<32} {rss / MB:>8.1f} {held:>12} {tcp:>14}")
    print("(kernel TCP memory is machine-wide: /proc/net/sockstat)")
    print(
        f"reading client got {outcome.received}/{load.snapshots} snapshots "
        f"in {outcome.delivered:.1f} s"
    )
    print(f"/ws/stats: {outcome.stats}")
    for line in outcome.metrics.splitlines():
        if line.startswith(
            ("arena_gateway_ws_clients_dropped_total", "arena_gateway_ws_clients_refused_total")
        ):
            print(line)


async def run(load: Load, env: dict[str, str]) -> None:
    snapshot = await realistic_snapshot()
    size = len(snapshot.model_dump_json())
    report(load, size, await observe(load, env, snapshot))


def measures(load: Load, outcome: Outcome) -> list[Measure]:
    """RSS at each look against the RSS at rest; every snapshot must reach the reader."""
    (_, rest, _, _), *looks = outcome.rows
    clients = f"{load.clients} stalled clients"
    names = {
        1: f"RSS, {clients} connected",
        2: f"RSS, {clients}, after {load.snapshots} snapshots",
        3: f"RSS, {clients}, peak while broadcasting",
        4: f"RSS, {clients}, {load.settle:g} s later",
    }
    return [
        Measure("gateway memory", "RSS at rest", rest / MB, "MB"),
        *(
            Measure("gateway memory", names[n], rss / MB, "MB", reference=rest / MB,
                    reference_name="at rest")
            for n, (_, rss, _, _) in enumerate(looks, start=1)
        ),
        Measure("gateway memory", "snapshots received by a reading client", outcome.received,
                "", Better.HIGHER, target=load.snapshots),
    ]  # fmt: skip


def measure(quick: bool = False) -> list[Measure]:
    load = Load(20, 20, 0.05, 1.0, False) if quick else Load(200, 200, 0.1, 40.0, False)

    async def run() -> list[Measure]:
        return measures(load, await observe(load, {}, await realistic_snapshot()))

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--snapshots", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between snapshots")
    parser.add_argument("--settle", type=float, default=40.0, help="seconds before the last look")
    parser.add_argument(
        "--deflate", action="store_true", help="stalled clients offer compression, as browsers do"
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="gateway setting"
    )
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.set)
    load = Load(args.clients, args.snapshots, args.interval, args.settle, args.deflate)
    asyncio.run(run(load, env))


if __name__ == "__main__":
    main()
