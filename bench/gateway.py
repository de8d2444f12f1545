"""Gateway benchmarks: REST throughput and latency, and WebSocket fan-out delay.

``python -m bench.gateway`` starts a nats-server, the ledger and market stand-ins
(tests/gateway/standins.py) in one process and the real gateway (``python -m
services.gateway``, one worker) in another, then drives it from this process on loopback:

- ``/trading/leaderboard`` and ``/market/prices``: requests per second and p50/p99
  latency, from keep-alive connections (a minimal HTTP/1.1 client, so the load generator
  is not the bottleneck);
- 1,000 WebSocket clients: the delay from a ``cycle_complete`` published on NATS to its
  arrival at each client (p50/p95).

Targets: >= 1,500 req/s with p99 < 50 ms; p95 delivery < 500 ms. References measured in
the same run: a bare FastAPI endpoint served the same way (bench/bare_http.py) under the
same load, and the delivery of the same events to a single WebSocket client.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import websockets

from bench.bare_http import PATH as BARE_PATH
from bench.bare_http import bare_server
from bench.measures import Better, Measure
from bench.sampling import percentile
from bench.serving import process, wait_for_text, wait_http
from bench.table import print_measures
from devstack.nats_server import EmbeddedNats
from devstack.ports import free_port
from services.common import subjects
from services.common.contracts import CycleCompleted

LINEUP = Path(__file__).resolve().parents[1] / "tests" / "gateway" / "agents.toml"


# ------------------------------------------------------------------ processes


async def _serve_standins(nats_url: str) -> None:
    from tests.gateway import standins

    state = standins.ArenaState()
    buses = [await standins.ledger(nats_url, state), await standins.market(nats_url, state)]
    print("ready", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        for bus in buses:
            await bus.close()


@dataclass(frozen=True)
class Arena:
    nats_url: str
    port: int
    gateway_pid: int


@contextlib.contextmanager
def arena(tmp: Path, settings: dict[str, str] | None = None) -> Iterator[Arena]:
    """nats-server, stand-ins and the gateway (with extra ``settings`` in its environment)."""
    nats = EmbeddedNats(tmp / "nats")
    nats.start()
    port = free_port()
    env = {
        **os.environ,
        "NATS_URL": nats.url,
        "GATEWAY_PORT": str(port),
        "ARENA_AGENTS_FILE": str(LINEUP),
        "ARENA_SYMBOLS": "BTCUSDT,ETHUSDT",
        "LOG_LEVEL": "WARNING",
        "ARENA_WS_QUEUE_SIZE": "256",
        **(settings or {}),
    }
    env.pop("ARENA_ADMIN_TOKEN", None)
    try:
        standins_log, gateway_log = tmp / "standins.log", tmp / "gateway.log"
        with process(
            [sys.executable, "-m", "bench.gateway", "--standins", nats.url], env, standins_log
        ) as standins:
            wait_for_text(standins_log, "ready", standins)
            with process([sys.executable, "-m", "services.gateway"], env, gateway_log) as gw:
                wait_http(f"http://127.0.0.1:{port}/health", gw, gateway_log, timeout=30)
                yield Arena(nats.url, port, gw.pid)
    finally:
        nats.stop()


# ------------------------------------------------------------------ REST load


async def _http_worker(
    port: int, path: str, until: float, latencies: list[float], errors: list[str]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n\r\n"
    payload = request.encode()
    try:
        while time.perf_counter() < until:
            start = time.perf_counter()
            writer.write(payload)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            latencies.append((time.perf_counter() - start) * 1000)
            if not head.startswith(b"HTTP/1.1 200"):
                errors.append(head.split(b"\r\n", 1)[0].decode())
    finally:
        writer.close()


async def load(
    port: int, path: str, seconds: float, connections: int
) -> tuple[float, list[float], int]:
    """Returns (requests per second, latencies in ms, non-200 answers)."""
    latencies: list[float] = []
    errors: list[str] = []
    # A short warm-up so the first connection's set-up is not measured.
    await _http_worker(port, path, time.perf_counter() + 0.3, [], [])
    start = time.perf_counter()
    until = start + seconds
    await asyncio.gather(
        *(_http_worker(port, path, until, latencies, errors) for _ in range(connections))
    )
    elapsed = time.perf_counter() - start
    return len(latencies) / elapsed, latencies, len(errors)


# ------------------------------------------------------------------ WebSocket fan-out


@contextlib.asynccontextmanager
async def ws_clients(port: int, count: int) -> AsyncIterator[list[list[float]]]:
    """``count`` clients; each records the arrival time of every cycle_complete."""
    arrivals: list[list[float]] = [[] for _ in range(count)]
    ready = [asyncio.Event() for _ in range(count)]
    stop = asyncio.Event()

    async def client(i: int) -> None:
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws", max_size=None) as ws:
            async for raw in ws:
                text = raw if isinstance(raw, str) else raw.decode()
                if '"type":"initial_data"' in text:
                    ready[i].set()
                elif '"type":"cycle_complete"' in text:
                    arrivals[i].append(time.time())
                if stop.is_set():
                    return

    tasks = []
    for start in range(0, count, 100):  # connect in batches, as browsers would trickle in
        batch = [asyncio.create_task(client(i)) for i in range(start, min(count, start + 100))]
        tasks.extend(batch)
        await asyncio.wait_for(
            asyncio.gather(*(ready[i].wait() for i in range(start, start + len(batch)))), 60
        )
    try:
        yield arrivals
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def fanout(nats_url: str, port: int, clients: int, cycles: int) -> list[float]:
    """Delays in ms from publishing each cycle_complete to its arrival at each client."""
    from prometheus_client import CollectorRegistry

    from services.common.bus import Bus, BusMetrics

    bus = await Bus.connect(nats_url, "bench", BusMetrics(CollectorRegistry()))
    delays: list[float] = []
    try:
        async with ws_clients(port, clients) as arrivals:
            for n in range(cycles):
                sent = time.time()
                event = CycleCompleted(
                    cycle_id=f"bench-{n}",
                    completed_at=datetime.now(UTC),
                    duration_seconds=1.0,
                    timed_out=False,
                    outcomes=(),
                )
                await bus.publish(subjects.CYCLE_COMPLETED, event, event.cycle_id)
                deadline = time.monotonic() + 30
                while sum(len(a) > n for a in arrivals) < clients:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"cycle {n} did not reach every client in 30 s")
                    await asyncio.sleep(0.01)
                delays.extend((a[n] - sent) * 1000 for a in arrivals)
    finally:
        await bus.close()
    return delays


# ------------------------------------------------------------------ report


async def run(seconds: float, connections: int, clients: int, cycles: int) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp,
        # Room for every fan-out client: the default limit is below the benchmark's 1,000.
        arena(Path(tmp), {"ARENA_WS_MAX_CLIENTS": str(max(clients, 1))}) as running,
    ):
        nats_url, port = running.nats_url, running.port
        print(f"gateway on 127.0.0.1:{port}, one worker; {connections} keep-alive connections")
        print(
            f"{'endpoint':<24} {'requests':>9} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'non-200':>8}"
        )
        for path in ("/trading/leaderboard", "/market/prices"):
            rps, latencies, errors = await load(port, path, seconds, connections)
            print(
                f"{path:<24} {len(latencies):>9} {rps:>9.0f} {percentile(latencies, 50):>8.2f} "
                f"{percentile(latencies, 99):>8.2f} {errors:>8}"
            )
        delays = await fanout(nats_url, port, clients, cycles)
        print()
        print(
            f"{'cycle_complete fan-out':<24} {'clients':>9} {'cycles':>9} {'p50 ms':>8} "
            f"{'p95 ms':>8} {'max ms':>8}"
        )
        print(
            f"{'NATS -> WebSocket':<24} {clients:>9} {cycles:>9} {percentile(delays, 50):>8.1f} "
            f"{percentile(delays, 95):>8.1f} {max(delays):>8.1f}"
        )
        print(f"mean delay {statistics.fmean(delays):.1f} ms")
        print("targets: >= 1,500 req/s with p99 < 50 ms; p95 delivery < 500 ms")


RPS_TARGET = 1500.0
P99_TARGET_MS = 50.0
DELIVERY_P95_TARGET_MS = 500.0
ENDPOINTS = ("/trading/leaderboard", "/market/prices")


async def _measures(tmp: Path, seconds: float, connections: int, clients: int, cycles: int
                    ) -> list[Measure]:  # fmt: skip
    with bare_server(tmp / "bare.log") as bare_port:
        bare_rps, bare_latencies, _ = await load(bare_port, BARE_PATH, seconds, connections)
    measures = []
    with arena(tmp, {"ARENA_WS_MAX_CLIENTS": str(max(clients, 1))}) as running:
        bare = "bare FastAPI"
        for path in ENDPOINTS:
            rps, latencies, errors = await load(running.port, path, seconds, connections)
            if errors:
                raise RuntimeError(f"{path}: {errors} answers were not 200")
            measures += [
                Measure("gateway", f"GET {path} ({connections} connections)", rps, "req/s",
                        Better.HIGHER, RPS_TARGET, bare_rps, bare),
                Measure("gateway", f"GET {path} p99", percentile(latencies, 99), "ms",
                        Better.LOWER, P99_TARGET_MS, percentile(bare_latencies, 99), bare),
            ]  # fmt: skip
        single = await fanout(running.nats_url, running.port, 1, cycles)
        delays = await fanout(running.nats_url, running.port, clients, cycles)
    one = "to 1 client"
    name = f"WebSocket fan-out, NATS to {clients:,} clients"
    return [
        *measures,
        Measure("gateway", f"{name} p50", percentile(delays, 50), "ms",
                reference=percentile(single, 50), reference_name=one),
        Measure("gateway", f"{name} p95", percentile(delays, 95), "ms",
                target=DELIVERY_P95_TARGET_MS,
                reference=percentile(single, 95), reference_name=one),
    ]  # fmt: skip


def measure(quick: bool = False) -> list[Measure]:
    seconds, connections, clients, cycles = (1.0, 8, 100, 2) if quick else (5.0, 16, 1000, 5)
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        return asyncio.run(_measures(Path(tmp), seconds, connections, clients, cycles))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0, help="load per endpoint")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--standins", metavar="NATS_URL", help=argparse.SUPPRESS)
    parser.add_argument("--table", action="store_true", help="the figures as make bench shows them")
    args = parser.parse_args()
    if args.standins:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve_standins(args.standins))
        return
    if args.table:
        with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
            print_measures(asyncio.run(_measures(
                Path(tmp), args.seconds, args.connections, args.clients, args.cycles
            )))  # fmt: skip
        return
    asyncio.run(run(args.seconds, args.connections, args.clients, args.cycles))


if __name__ == "__main__":
    main()
