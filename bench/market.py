"""Market benchmarks: snapshot from a local Binance-format server, indicators, replay speed.

``python -m bench.market`` prints its figures in ``make bench``'s table.
Targets: indicators of six symbols p95 < 5 ms; the market's replay alone (no other
service) > 1,000 cycles/s for a month of one-minute bars.
"""

from __future__ import annotations

import asyncio
import math
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from bench.measures import Better, Measure
from bench.sampling import percentile
from bench.table import print_measures
from services.common.clock import SystemClock
from services.common.settings import DEFAULT_SYMBOLS
from services.market.binance.client import BinanceClient, ClientPolicy
from services.market.binance.source import BinanceSource
from services.market.indicators import compute_indicators
from services.market.replay import ReplaySource
from services.market.simulator import SimulatorSource
from services.market.snapshot import build_snapshot
from tests.fakes.binance import fake_binance

NOW = datetime(2025, 3, 1, tzinfo=UTC)


async def _timed(runs: int, action: Callable[[], Awaitable[object]]) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        await action()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


async def bench_binance_snapshot(runs: int) -> list[float]:
    async with fake_binance() as fake:
        client = BinanceClient(fake.url, clock=SystemClock(), policy=ClientPolicy(cache_ttl=0))
        source = await BinanceSource.open(client, DEFAULT_SYMBOLS)

        async def once() -> None:
            data = await source.snapshot_data(NOW)
            build_snapshot(cycle_id="b", taken_at=NOW, decision_deadline=NOW, source="b", data=data)

        try:
            await once()  # connections warm
            return await _timed(runs, once)
        finally:
            await source.aclose()


async def bench_indicators(runs: int) -> list[float]:
    data = await SimulatorSource(42, DEFAULT_SYMBOLS, NOW).snapshot_data(NOW)

    async def once() -> None:
        for symbol in data.symbols:
            compute_indicators(symbol.candles)

    return await _timed(runs, once)


def _write_replay(directory: Path, minutes: int) -> None:
    start = int(NOW.timestamp() * 1000)
    for n, symbol in enumerate(DEFAULT_SYMBOLS):
        base = 100.0 * (n + 1)
        lines = []
        for i in range(minutes):
            close = round(base * (1 + 0.01 * math.sin(i / 50 + n)), 2)
            lines.append(
                f"{start + i * 60000},{close},{close + 0.05:.2f},{close - 0.05:.2f},{close},1.5,0"
            )
        (directory / f"{symbol}-1m-2025-03.csv").write_text("\n".join(lines) + "\n")


async def bench_replay(minutes: int) -> tuple[int, float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        _write_replay(Path(tmp), minutes)
        loading = time.perf_counter()
        source = ReplaySource.from_directory(Path(tmp), DEFAULT_SYMBOLS)
        loaded = time.perf_counter() - loading
    cycles = 0
    start = time.perf_counter()
    while source.remaining() >= 5:
        data = await source.snapshot_data(NOW)
        build_snapshot(
            cycle_id="r", taken_at=source.now(), decision_deadline=NOW, source="replay", data=data
        )
        for _ in range(5):
            await source.tick(NOW)
        cycles += 1
    return cycles, time.perf_counter() - start, loaded


INDICATORS_TARGET_MS = 5.0
REPLAY_TARGET_CYCLES_PER_S = 1000.0


async def _measure(quick: bool) -> list[Measure]:
    snapshots = await bench_binance_snapshot(10 if quick else 30)
    indicators = await bench_indicators(50 if quick else 300)
    days = 3 if quick else 30
    cycles, seconds, loaded = await bench_replay(days * 24 * 60)
    return [
        Measure("market", "snapshot from a local Binance server p50", percentile(snapshots, 50),
                "ms"),
        Measure("market", "snapshot from a local Binance server p95", percentile(snapshots, 95),
                "ms"),
        Measure("market", "indicators, 6 symbols x 100 candles p95", percentile(indicators, 95),
                "ms", target=INDICATORS_TARGET_MS),
        Measure("market", f"replay load, {days} days of 1m bars", loaded, "s"),
        Measure("market", f"replay alone, {days} days of 1m bars", cycles / seconds, "cycles/s",
                Better.HIGHER, target=REPLAY_TARGET_CYCLES_PER_S),
    ]  # fmt: skip


def measure(quick: bool = False) -> list[Measure]:
    return asyncio.run(_measure(quick))


def main() -> None:
    print_measures(measure())


if __name__ == "__main__":
    main()
