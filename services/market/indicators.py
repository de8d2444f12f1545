"""Technical indicators of a candle series, computed with TA-Lib.

Indicators are analysis for the prompt, not money, so they are floats; a value that the
series is too short for (TA-Lib answers NaN) is ``None``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import talib

from services.common.contracts import Candle, Indicators

FloatArray = npt.NDArray[np.float64]


def _last(values: FloatArray) -> float | None:
    if len(values) == 0:
        return None
    value = float(values[-1])
    return None if math.isnan(value) else value


def _column(candles: Sequence[Candle], field: str) -> FloatArray:
    return np.array([float(getattr(c, field)) for c in candles], dtype=np.float64)


def columns(candles: Sequence[Candle]) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(high, low, close) of ``candles`` as float arrays."""
    return _column(candles, "high"), _column(candles, "low"), _column(candles, "close")


def compute_indicators(candles: Sequence[Candle]) -> Indicators:
    """Indicators of the last candle of ``candles`` (oldest first)."""
    if not candles:
        return Indicators()
    return indicators_of(*columns(candles))


def indicators_of(high: FloatArray, low: FloatArray, close: FloatArray) -> Indicators:
    """The full indicator set from (oldest first) high, low and close arrays."""
    if len(close) == 0:
        return Indicators()
    macd, macd_signal, macd_hist = talib.MACD(close, fastperiod=12, slowperiod=26, signalperiod=9)
    bb_upper, bb_middle, bb_lower = talib.BBANDS(close, timeperiod=20, nbdevup=2, nbdevdn=2)
    return Indicators(
        rsi_7=_last(talib.RSI(close, timeperiod=7)),
        rsi_14=_last(talib.RSI(close, timeperiod=14)),
        ema_20=_last(talib.EMA(close, timeperiod=20)),
        ema_50=_last(talib.EMA(close, timeperiod=50)),
        macd=_last(macd),
        macd_signal=_last(macd_signal),
        macd_hist=_last(macd_hist),
        bb_upper=_last(bb_upper),
        bb_middle=_last(bb_middle),
        bb_lower=_last(bb_lower),
        atr_14=_last(talib.ATR(high, low, close, timeperiod=14)),
    )


def context_of(high: FloatArray, low: FloatArray, close: FloatArray) -> Indicators | None:
    if len(close) == 0:
        return None
    return Indicators(
        rsi_14=_last(talib.RSI(close, timeperiod=14)),
        ema_20=_last(talib.EMA(close, timeperiod=20)),
        ema_50=_last(talib.EMA(close, timeperiod=50)),
        atr_14=_last(talib.ATR(high, low, close, timeperiod=14)),
    )
