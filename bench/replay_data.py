"""Market history in Binance's public-data layout, made by the seeded simulator.

``write_month(directory, start, days)`` writes ``<SYMBOL>-1m-<YYYY-MM>.csv`` files (the
columns of data.binance.vision's klines) for the arena's six symbols, so a replay of a
month can be measured without a network. The same seed gives the same files.

    python -m bench.replay_data DIR [--days 30]
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.common.settings import DEFAULT_SYMBOLS
from services.market.simulator import MarketSimulator

HEADER = (
    "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
    "taker_buy_volume,taker_buy_quote_volume,ignore\n"
)
START = datetime(2025, 1, 1, tzinfo=UTC)


def write_month(
    directory: Path,
    start: datetime = START,
    days: int = 30,
    symbols: tuple[str, ...] = DEFAULT_SYMBOLS,
    seed: int = 7,
) -> list[Path]:
    """One CSV per symbol with ``days`` days of one-minute bars from ``start``."""
    directory.mkdir(parents=True, exist_ok=True)
    simulator = MarketSimulator(seed, symbols, start)
    month = start.strftime("%Y-%m")
    paths = {s: directory / f"{s}-1m-{month}.csv" for s in symbols}
    files = {s: p.open("w", encoding="ascii") for s, p in paths.items()}
    try:
        for f in files.values():
            f.write(HEADER)
        when = start
        for _ in range(days * 24 * 60):
            for symbol, bar in simulator.step().items():
                opened = int(when.timestamp() * 1000)
                files[symbol].write(
                    f"{opened},{bar.open},{bar.high},{bar.low},{bar.close},{bar.volume},"
                    f"{opened + 59_999},0,0,0,0,0\n"
                )
            when += timedelta(minutes=1)
    finally:
        for f in files.values():
            f.close()
    return list(paths.values())


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.replay_data", description=__doc__)
    parser.add_argument("directory", type=Path)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    for path in write_month(args.directory, days=args.days):
        print(path)


if __name__ == "__main__":
    main()
