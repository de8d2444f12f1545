"""TA-Lib indicators against independent hand-written references on a fixed series."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from statistics import fmean, pstdev

import pytest

from services.common.contracts import Candle
from services.market.indicators import compute_indicators

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _series(n: int) -> list[float]:
    return [
        round(100 + 8 * math.sin(i / 4) + 0.25 * i + 3 * math.cos(i / 1.7), 2) for i in range(n)
    ]


def _candles(closes: list[float]) -> list[Candle]:
    candles = []
    for i, close in enumerate(closes):
        open_ = closes[i - 1] if i else close
        candles.append(
            Candle(
                open_time=T0 + timedelta(minutes=5 * i),
                open=Decimal(str(open_)),
                high=Decimal(str(round(max(open_, close) + 0.7, 2))),
                low=Decimal(str(round(min(open_, close) - 0.5, 2))),
                close=Decimal(str(close)),
                volume=Decimal(1),
            )
        )
    return candles


def reference_ema(values: list[float], period: int) -> float:
    """EMA seeded with the simple average of the first ``period`` values."""
    k = 2 / (period + 1)
    ema = fmean(values[:period])
    for value in values[period:]:
        ema += (value - ema) * k
    return ema


def reference_rsi(values: list[float], period: int) -> float:
    """Wilder's RSI: simple averages of the first ``period`` moves, then Wilder smoothing."""
    moves = [b - a for a, b in itertools.pairwise(values)]
    gain = fmean(max(m, 0) for m in moves[:period])
    loss = fmean(max(-m, 0) for m in moves[:period])
    for move in moves[period:]:
        gain = (gain * (period - 1) + max(move, 0)) / period
        loss = (loss * (period - 1) + max(-move, 0)) / period
    return 100 * gain / (gain + loss)


def reference_atr(candles: list[Candle], period: int) -> float:
    ranges = [
        max(
            float(c.high - c.low),
            abs(float(c.high - prev.close)),
            abs(float(c.low - prev.close)),
        )
        for prev, c in itertools.pairwise(candles)
    ]
    atr = fmean(ranges[:period])
    for r in ranges[period:]:
        atr = (atr * (period - 1) + r) / period
    return atr


def test_ema_rsi_bollinger_atr_match_the_references() -> None:
    closes = _series(100)
    candles = _candles(closes)
    got = compute_indicators(candles)
    assert got.ema_20 == pytest.approx(reference_ema(closes, 20), rel=1e-9)
    assert got.ema_50 == pytest.approx(reference_ema(closes, 50), rel=1e-9)
    assert got.rsi_7 == pytest.approx(reference_rsi(closes, 7), rel=1e-9)
    assert got.rsi_14 == pytest.approx(reference_rsi(closes, 14), rel=1e-9)
    assert got.bb_middle == pytest.approx(fmean(closes[-20:]), rel=1e-9)
    width = 2 * pstdev(closes[-20:])
    assert got.bb_upper == pytest.approx(fmean(closes[-20:]) + width, rel=1e-9)
    assert got.bb_lower == pytest.approx(fmean(closes[-20:]) - width, rel=1e-9)
    assert got.atr_14 == pytest.approx(reference_atr(candles, 14), rel=1e-9)
    assert got.macd is not None and got.macd_signal is not None and got.macd_hist is not None
    assert got.macd_hist == pytest.approx(got.macd - got.macd_signal, abs=1e-9)


def test_short_series_gives_none_not_nan() -> None:
    got = compute_indicators(_candles(_series(12)))
    assert got.rsi_7 == pytest.approx(reference_rsi(_series(12), 7), rel=1e-9)
    assert got.rsi_14 is None
    assert got.ema_20 is None and got.ema_50 is None
    assert got.macd is None and got.bb_middle is None and got.atr_14 is None
    assert compute_indicators([]).rsi_7 is None
