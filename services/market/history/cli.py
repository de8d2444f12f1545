"""``python -m services.market history fetch --symbols ... --from ... --to ... --dir ...``."""

from __future__ import annotations

import argparse
from pathlib import Path

import httpx

from services.common.settings import Settings
from services.market.history.fetch import Fetcher
from services.market.history.paths import parse_bound, plan

TIMEOUT_SECONDS = 60.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m services.market history")
    commands = parser.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser(
        "fetch", help="download Binance USD-M klines, mark-price klines and funding rates"
    )
    fetch.add_argument("--symbols", required=True, help="comma-separated, e.g. BTCUSDT,ETHUSDT")
    fetch.add_argument("--from", dest="start", required=True, help="YYYY-MM or YYYY-MM-DD")
    fetch.add_argument("--to", dest="end", required=True, help="YYYY-MM or YYYY-MM-DD, included")
    fetch.add_argument("--dir", type=Path, default=Path("data/binance"))
    fetch.add_argument("--base-url", help="default: BINANCE_DATA_URL (https://data.binance.vision)")
    return parser


def main(argv: list[str]) -> int:
    """Runs the command; 0 when every file is here and verified, 1 otherwise."""
    parser = _parser()
    args = parser.parse_args(argv)
    symbols = tuple(s.strip().upper() for s in args.symbols.split(",") if s.strip())
    try:
        wanted = plan(symbols, parse_bound(args.start, end=False), parse_bound(args.end, end=True))
    except ValueError as exc:
        parser.error(str(exc))
    base_url = args.base_url or Settings().binance_data_url
    print(f"fetching {', '.join(symbols)} from {base_url} into {args.dir}", flush=True)
    with httpx.Client(timeout=TIMEOUT_SECONDS, follow_redirects=True) as client:
        summary = Fetcher(client, base_url, args.dir, lambda line: print(line, flush=True)).fetch(
            wanted
        )
    return 0 if summary.complete else 1
