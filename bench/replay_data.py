"""Market history in Binance's public-data layout, made by the seeded simulator.

``write_month(directory, start, days)`` writes ``<SYMBOL>-1m-<YYYY-MM>.csv`` files (the
columns of data.binance.vision's klines) for the arena's six symbols, so a replay of a
month can be measured without a network. The same seed gives the same files.

    python -m bench.replay_data DIR [--days 30]
    python -m bench.replay_data DIR --mirror   # a local data.binance.vision

With ``--mirror`` the month is written as data.binance.vision serves it: zipped klines,
mark-price klines (the same bars) and funding rates (0.01 % every 8 h), each with its
``.CHECKSUM``, under ``DIR/data/futures/um/monthly/``; ``python -m http.server -d DIR``
then stands in for the site (``history fetch --base-url``) on a machine without internet.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.common.settings import DEFAULT_SYMBOLS
from services.market.history.paths import Kind, RemoteFile
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


def write_mirror(directory: Path, days: int = 30, start: datetime = START) -> list[Path]:
    """``write_month``'s bars as the public-data site lays them out, zipped with checksums."""
    with tempfile.TemporaryDirectory() as scratch:
        csvs = write_month(Path(scratch), start=start, days=days)
        month = start.strftime("%Y-%m")
        written = []
        for csv in csvs:
            symbol = csv.name.split("-")[0]
            bars = csv.read_text(encoding="ascii")
            funding = "calc_time,funding_interval_hours,last_funding_rate\n" + "".join(
                f"{int((start + timedelta(hours=8 * k)).timestamp() * 1000) + 5},8,0.00010000\n"
                for k in range(days * 3)
            )
            for kind, text in ((Kind.KLINES, bars), (Kind.MARK, bars), (Kind.FUNDING, funding)):
                remote = RemoteFile(symbol, kind, month)
                written.append(_zipped(directory / remote.path, text))
        return written


def _zipped(path: Path, text: str) -> Path:
    """``path`` (a .zip holding ``<stem>.csv``) and its ``.CHECKSUM`` beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(path.with_suffix(".csv").name, text)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    path.with_name(path.name + ".CHECKSUM").write_text(f"{digest}  {path.name}\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.replay_data", description=__doc__)
    parser.add_argument("directory", type=Path)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--mirror", action="store_true", help="as data.binance.vision serves it")
    args = parser.parse_args()
    write = write_mirror if args.mirror else write_month
    for path in write(args.directory, days=args.days):
        print(path)


if __name__ == "__main__":
    main()
