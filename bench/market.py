"""Market benchmarks: snapshot from a local Binance-format server, indicators, replay speed.

``python -m bench.market`` prints one table (milliseconds unless said otherwise).
Targets (issue 4): indicators of six symbols < 5 ms; replay alone > 1,000 cycles/s.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

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


def _row(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1)]

    return (
        f"{name:<44} {len(samples):>6} {statistics.fmean(samples):>9.3f} {pct(50):>9.3f} "
        f"{pct(95):>9.3f} {pct(99):>9.3f}"
    )


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


async def main() -> None:
    header = f"{'measure (6 symbols)':<44} {'runs':>6} {'mean':>9} {'p50':>9} {'p95':>9} {'p99':>9}"
    print(header)
    print("-" * len(header))
    print(_row("snapshot from local Binance server (ms)", await bench_binance_snapshot(30)))
    indicators = await bench_indicators(300)
    print(_row("all indicators, 100 candles each (ms)", indicators))
    cycles, seconds, loaded = await bench_replay(30 * 24 * 60)
    print()
    print(f"replay load (parse + aggregate 6 x 43,200 rows): {loaded:.2f}s")
    print(f"replay, one month of 1m bars: {cycles} cycles (5 ticks each) in {seconds:.2f}s")
    print(f"replay speed: {cycles / seconds:,.0f} cycles/s (target > 1,000)")
    p95 = sorted(indicators)[int(0.95 * len(indicators))]
    print(f"indicators p95 {p95:.2f} ms (target < 5 ms): {'ok' if p95 < 5 else 'MISSED'}")


if __name__ == "__main__":
    asyncio.run(main())
