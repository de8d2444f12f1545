"""The built-in baselines (``provider = "baseline"``), chosen by the line-up's ``model``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from services.agent.baselines.buy_and_hold import BuyAndHold
from services.agent.baselines.config import BaselineConfig
from services.agent.baselines.ema_cross import EmaCross
from services.agent.baselines.random_walk import RandomTrader
from services.agent.baselines.rsi_reversion import RsiReversion
from services.agent.strategy import Strategy

BASELINES: Mapping[str, Callable[[BaselineConfig], Strategy]] = MappingProxyType(
    {
        "ema-cross": EmaCross,
        "rsi-reversion": RsiReversion,
        "random": RandomTrader,
        "buy-and-hold": BuyAndHold,
    }
)

__all__ = ["BASELINES", "BaselineConfig"]
