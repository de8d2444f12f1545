"""The source ``MARKET_SOURCE`` names: ``auto``, ``simulator``, ``binance``, ``replay:<dir>``."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from services.common.clock import Clock
from services.common.instruments import load_instruments
from services.common.settings import Settings
from services.market.binance.client import BinanceClient, ClientPolicy
from services.market.binance.errors import BinanceError
from services.market.binance.source import BinanceSource
from services.market.replay import ReplaySource
from services.market.replay_csv import ReplayDataError
from services.market.simulator import SimulatorSource
from services.market.source import MarketSource, SourceError
from services.market.walk import PROFILES

log = logging.getLogger(__name__)

REPLAY_PREFIX = "replay:"
# ``auto`` decides within this many seconds whether Binance is reachable.
PROBE_SECONDS = 3.0


async def create_source(
    settings: Settings, clock: Clock, probe_seconds: float = PROBE_SECONDS
) -> MarketSource:
    """The configured source; a source that cannot be used is a clear start-up error."""
    choice = settings.market_source.strip()
    if choice == "simulator":
        return _simulator(settings, clock)
    if choice == "binance":
        return await _binance(settings, clock)
    if choice.startswith(REPLAY_PREFIX):
        # Reading a month of CSVs takes a while: off the event loop.
        return await asyncio.to_thread(_replay, choice.removeprefix(REPLAY_PREFIX), settings)
    if choice == "auto":
        reason = await _probe(settings, clock, probe_seconds)
        if reason is None:
            log.info("MARKET_SOURCE=auto: Binance at %s is reachable", settings.binance_base_url)
            return await _binance(settings, clock)
        log.warning(
            "MARKET_SOURCE=auto: Binance at %s is unreachable (%s); using the SIMULATOR. "
            "Prices are SIMULATED, not real market data.",
            settings.binance_base_url,
            reason,
            extra={"market_source": "simulator", "requested": "auto"},
        )
        return _simulator(settings, clock)
    raise SourceError(
        f"MARKET_SOURCE={choice!r} is unknown; expected auto, simulator, binance or replay:<dir>"
    )


async def _probe(settings: Settings, clock: Clock, seconds: float) -> str | None:
    """``None`` when Binance answers a ping within ``seconds``, else why not."""
    client = BinanceClient(
        settings.binance_base_url,
        clock=clock,
        policy=ClientPolicy(timeout=seconds, retries=0),
    )
    try:
        # DNS lookups may ignore the HTTP timeout; the outer one bounds the probe anyway.
        await asyncio.wait_for(client.ping(), timeout=seconds + 1)
    except TimeoutError:
        return f"no answer within {seconds:.0f}s"
    except BinanceError as exc:
        return str(exc)
    finally:
        await client.aclose()
    return None


async def _binance(settings: Settings, clock: Clock) -> MarketSource:
    client = BinanceClient(settings.binance_base_url, clock=clock)
    try:
        source = await BinanceSource.open(client, settings.symbols)
    except BaseException:
        await client.aclose()
        raise
    log.info("market source: binance at %s", settings.binance_base_url)
    return source


def _replay(location: str, settings: Settings) -> ReplaySource:
    directory = Path(location).expanduser()
    try:
        source = ReplaySource.from_directory(
            directory, settings.symbols, start=settings.replay_from, end=settings.replay_to
        )
    except ReplayDataError as exc:
        raise SourceError(f"MARKET_SOURCE=replay:{directory}: {exc}") from exc
    log.info("market source: replay of %s", directory)
    return source


def _simulator(settings: Settings, clock: Clock) -> MarketSource:
    generic = [s for s in settings.symbols if s not in PROFILES]
    if generic:
        log.warning(
            "the simulator has no profile for %s; they walk from a neutral 10 USDT start",
            ", ".join(generic),
        )
    log.info("market source: simulator (seed %d)", settings.seed)
    return SimulatorSource(
        settings.seed, settings.symbols, clock.now(), load_instruments(settings.instruments_file)
    )
