"""Read latencies with a month of history: every GET of the API, and the dashboard's first load.

``python -m bench.reads`` writes a month (7 agents, 8,640 five-minute cycles, 60 s ticks:
about 300k equity snapshots, 60k chained decisions, 10k trades) into a fresh embedded
Postgres (bench/reads_history.py), brings the equity curves' summaries and the verify
checkpoint up to date as a running ledger would have them, then starts nats-server, the
real ledger, a market stand-in (tests/gateway/standins.py: the market keeps no history)
and the gateway, each a process. It measures p50/p95 of every GET, with the query strings
the dashboard uses, one request at a time, and the dashboard's first load as a browser
does it: the page, its assets in parallel, the WebSocket's ``initial_data``, its
150 ms debounce, then equity, trades, decisions and statistics in parallel (wall time).
The reference is a bare FastAPI endpoint served the same way (bench/bare_http.py) in the
same run.

Targets (issue 13): every GET p95 < 100 ms, first load < 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx
import websockets

from bench.bare_http import PATH as BARE_PATH
from bench.bare_http import bare_server
from bench.measures import Measure
from bench.reads_history import LINEUP, History, build
from bench.sampling import percentile
from bench.serving import process, wait_http
from devstack.nats_server import EmbeddedNats
from devstack.ports import free_port
from devstack.postgres import EmbeddedPostgres
from services.ledger import curve_store
from services.ledger.verify import examine

GROUP = "reads"
TARGET_MS = 100.0
FIRST_LOAD_TARGET_MS = 1000.0
AGENT = "momentum"
SYMBOL = "BTCUSDT"

ENDPOINTS = (
    "/",
    "/health",
    "/trading/status",
    "/trading/agents",
    "/trading/accounts",
    f"/trading/accounts/{AGENT}",
    "/trading/positions?limit=100",
    f"/trading/positions/{AGENT}?status=all",
    "/trading/trades?limit=25",
    f"/trading/trades/{AGENT}",
    "/trading/leaderboard",
    "/trading/decisions?limit=30",
    f"/trading/decisions/{AGENT}",
    "/trading/equity?points=1000&limit=20000&format=columns",
    "/trading/equity?points=1000&limit=20000",
    f"/trading/equity?agent_id={AGENT}&points=1000",
    "/trading/stats",
    "/audit/verify",
    "/market/snapshot",
    "/market/prices",
    f"/market/price/{SYMBOL}",
    f"/market/ticker/{SYMBOL}",
    f"/market/indicators/{SYMBOL}",
    "/scheduler/status",
    "/scheduler/stats",
    "/scheduler/next-run",
    "/ws/stats",
    "/seasons",
    "/metrics",
)
ASSETS = (
    "vendor/uPlot.min.css",
    "style.css",
    "vendor/uPlot.iife.min.js",
    "dom.js",
    "app.js",
    "seasons.js",
)
AFTER_INITIAL = (
    "/trading/equity?points=1000&limit=20000&format=columns",
    "/trading/trades?limit=25",
    "/trading/decisions?limit=30",
    "/trading/stats",
)
# The dashboard's equity request with a ``since`` before the history (the same answer) that
# differs on every request, so the gateway's cache never has it: what a miss costs.
UNCACHED = (
    "/trading/equity?points=1000&limit=20000&format=columns&since=2024-12-31T00:00:00.{n:06d}Z"
)
DEBOUNCE_S = 0.15  # app.js refresh(): parts asked together after 150 ms


# ------------------------------------------------------------------ processes


async def _prepare(url: str, days: float) -> tuple[History, float, float]:
    """The history, then what a ledger running all along would hold: the curves summed
    and a clean full verify (its checkpoint). Returns (history, build s, full verify ms)."""
    conn = await asyncpg.connect(url)
    try:
        began = time.perf_counter()
        history = await build(conn, days)
        built = time.perf_counter() - began
        pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
        try:
            await curve_store.catch_up(pool)
        finally:
            await pool.close()
        began = time.perf_counter()
        findings = await examine(conn, full=True)
        verified = (time.perf_counter() - began) * 1000
        if findings.problems:
            raise RuntimeError(f"the generated books do not verify: {findings.problems[:3]}")
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return history, built, verified


# ------------------------------------------------------------------ measuring


async def _latencies(client: httpx.AsyncClient, path: str, samples: int) -> list[float]:
    for _ in range(2):  # warm-up: connections, caches, prepared statements
        (await client.get(path)).raise_for_status()
    out = []
    for _ in range(samples):
        start = time.perf_counter()
        reply = await client.get(path)
        out.append((time.perf_counter() - start) * 1000)
        if reply.status_code != 200:
            raise RuntimeError(f"GET {path}: {reply.status_code} {reply.text[:200]}")
    return out


async def _uncached(client: httpx.AsyncClient, samples: int) -> list[float]:
    out = []
    for n in range(samples + 2):
        start = time.perf_counter()
        reply = await client.get(UNCACHED.format(n=n))
        if n >= 2:  # the first two warm up, as in _latencies
            out.append((time.perf_counter() - start) * 1000)
        reply.raise_for_status()
    return out


async def _first_load(port: int) -> float:
    """One dashboard load, as a browser with a cold cache does it; wall time in ms."""
    base = f"http://127.0.0.1:{port}"
    start = time.perf_counter()
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        (await client.get("/dashboard/")).raise_for_status()
        for reply in await asyncio.gather(*(client.get(f"/dashboard/{a}") for a in ASSETS)):
            reply.raise_for_status()
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws", max_size=None) as ws:
            async for raw in ws:
                if '"type":"initial_data"' in (raw if isinstance(raw, str) else raw.decode()):
                    break
        await asyncio.sleep(DEBOUNCE_S)
        for reply in await asyncio.gather(*(client.get(p) for p in AFTER_INITIAL)):
            reply.raise_for_status()
    return (time.perf_counter() - start) * 1000


async def _measure_all(
    port: int, bare_port: int, samples: int, loads: int
) -> tuple[dict[str, list[float]], list[float], list[float]]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{bare_port}", timeout=10) as bare:
        reference = await _latencies(bare, BARE_PATH, samples)
    found: dict[str, list[float]] = {}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        for path in ENDPOINTS:
            found[path] = await _latencies(client, path, samples)
        found["/trading/equity?...&format=columns, cache missed"] = await _uncached(client, samples)
    first = [await _first_load(port) for _ in range(loads)]
    return found, reference, first


def run(quick: bool = False) -> list[Measure]:
    days = 3.0 if quick else 30.0
    samples, loads = (10, 3) if quick else (40, 10)
    with tempfile.TemporaryDirectory(prefix="bench-reads-") as tmp:
        root = Path(tmp)
        postgres = EmbeddedPostgres(root / "pg", keep=False)
        postgres.start()
        nats = EmbeddedNats(root / "nats")
        nats.start()
        try:
            url = postgres.ensure_database("arena")
            history, built, verified = asyncio.run(_prepare(url, days))
            port = free_port()
            env = {
                **{k: v for k, v in os.environ.items() if k != "ARENA_ADMIN_TOKEN"},
                "NATS_URL": nats.url,
                "DATABASE_URL": url,
                "GATEWAY_PORT": str(port),
                "ARENA_AGENTS_FILE": str(LINEUP),
                "ARENA_SYMBOLS": "BTCUSDT,ETHUSDT",
                "METRICS_PORT": "0",
                "LOG_LEVEL": "WARNING",
            }
            me = [sys.executable, "-m", "bench.reads"]
            with (
                process([sys.executable, "-m", "services.ledger"], env, root / "ledger.log"),
                process([*me, "--market-standin", nats.url], env, root / "market.log"),
                bare_server(root / "bare.log") as bare_port,
                process(
                    [sys.executable, "-m", "services.gateway"], env, root / "gateway.log"
                ) as gateway,
            ):
                wait_http(f"http://127.0.0.1:{port}/health", gateway, root / "gateway.log")
                found, reference, first = asyncio.run(_measure_all(port, bare_port, samples, loads))
        finally:
            nats.stop()
            postgres.stop()
    bare_p95 = percentile(reference, 95)
    measures = [
        Measure(
            GROUP,
            f"GET {path} p95",
            round(percentile(values, 95), 2),
            "ms",
            target=TARGET_MS,
            reference=round(bare_p95, 2),
            reference_name="bare FastAPI endpoint p95",
        )
        for path, values in found.items()
    ]
    measures.append(
        Measure(
            GROUP,
            "dashboard first load (wall)",
            round(max(first), 1),
            "ms",
            target=FIRST_LOAD_TARGET_MS,
            reference=round(bare_p95, 2),
            reference_name="bare FastAPI endpoint p95",
        )
    )
    measures.append(Measure(GROUP, "verify --full in-process", round(verified, 1), "ms"))
    measures.append(Measure(GROUP, "history written", round(built, 1), "s"))
    measures.append(Measure(GROUP, "equity snapshots", history.equity_rows, "rows"))
    return measures


def measure(quick: bool = False) -> list[Measure]:
    return run(quick)


# ------------------------------------------------------------------ helpers run as processes


async def _serve_market(nats_url: str) -> None:
    from tests.gateway import standins

    bus = await standins.market(nats_url, standins.ArenaState())
    try:
        await asyncio.Event().wait()
    finally:
        await bus.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.reads", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 days of history, fewer samples")
    parser.add_argument("--market-standin", metavar="NATS_URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.market_standin:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve_market(args.market_standin))
        return
    measures = run(args.quick)
    print(f"{'figure':<52} {'value':>10} {'target':>8} {'ok':>4}")
    for m in measures:
        target = "" if m.target is None else f"{m.target:g}"
        ok = {None: "", True: "ok", False: "MISS"}[m.meets_target]
        print(f"{m.name:<52} {m.value:>8g} {m.unit:<2}{target:>7} {ok:>4}")
    bare = next(m.reference for m in measures if m.reference is not None)
    print(f"reference: bare FastAPI endpoint p95 {bare} ms")


if __name__ == "__main__":
    main()
