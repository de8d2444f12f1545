"""The source ``MARKET_SOURCE`` names: ``auto``, ``simulator``, ``binance``, ``replay:<dir>``."""

from __future__ import annotations

import logging
from datetime import datetime

from services.common.settings import Settings
from services.market.simulator import PROFILES, SimulatorSource
from services.market.source import MarketSource, SourceError

log = logging.getLogger(__name__)

REPLAY_PREFIX = "replay:"


def create_source(settings: Settings, start: datetime) -> MarketSource:
    """The configured source; a source that cannot be used is a clear start-up error."""
    choice = settings.market_source.strip()
    if choice == "simulator":
        return _simulator(settings, start)
    if choice == "auto":
        # Issue 4 probes Binance first; until then "auto" always means the simulator.
        log.warning(
            "MARKET_SOURCE=auto: Binance probing is not implemented yet, using the SIMULATOR. "
            "Prices are SIMULATED, not real market data.",
            extra={"market_source": "simulator", "requested": "auto"},
        )
        return _simulator(settings, start)
    if choice == "binance" or choice.startswith(REPLAY_PREFIX):
        raise SourceError(
            f"MARKET_SOURCE={choice} is not implemented yet; use 'simulator' or 'auto'"
        )
    raise SourceError(
        f"MARKET_SOURCE={choice!r} is unknown; expected auto, simulator, binance or replay:<dir>"
    )


def _simulator(settings: Settings, start: datetime) -> MarketSource:
    generic = [s for s in settings.symbols if s not in PROFILES]
    if generic:
        log.warning(
            "the simulator has no profile for %s; they walk from a neutral 10 USDT start",
            ", ".join(generic),
        )
    log.info("market source: simulator (seed %d)", settings.seed)
    return SimulatorSource(settings.seed, settings.symbols, start)
