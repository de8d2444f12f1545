"""Agent benchmark: prompt build time and parse throughput on the model-output corpus.

``python -m bench.agent``. Both should be negligible next to a model call
(goal: prompt < 5 ms, parse < 1 ms per output).
"""

from __future__ import annotations

import contextlib
import functools
import statistics
import time
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

from services.agent.parsing import ParseError, parse_answer
from services.agent.prompt import build_prompt
from services.common.contracts import Candle, Indicators
from services.common.settings import DEFAULT_SYMBOLS, TradingLimits
from tests.agent.builders import NOW, PRICES, portfolio, position, snapshot, symbol_snapshot
from tests.agent.corpus import load_cases

PROMPT_RUNS = 500
PARSE_ROUNDS = 200


def _candles(price: Decimal) -> tuple[Candle, ...]:
    start = NOW - timedelta(minutes=500)
    return tuple(
        Candle(
            open_time=start + timedelta(minutes=5 * n),
            open=price,
            high=price * Decimal("1.001"),
            low=price * Decimal("0.999"),
            close=price,
            volume=Decimal(1000),
        )
        for n in range(100)
    )


def _timings(run: Callable[[], object], count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        run()
        samples.append(time.perf_counter() - started)
    return samples


def _row(name: str, samples: list[float], goal_ms: float) -> str:
    ms = sorted(s * 1000 for s in samples)
    p50 = statistics.median(ms)
    p95 = ms[int(len(ms) * 0.95) - 1]
    p99 = ms[int(len(ms) * 0.99) - 1]
    verdict = "ok" if p99 < goal_ms else "SLOW"
    return (
        f"{name:<22}{len(ms):>7}{p50:>10.3f}{p95:>10.3f}{p99:>10.3f}{ms[-1]:>10.3f}"
        f"{goal_ms:>8.1f}  {verdict}"
    )


def main() -> None:
    indicators = Indicators(
        rsi_7=55.1, rsi_14=52.3, ema_20=1.0, ema_50=1.0, macd=0.1, macd_signal=0.05,
        macd_hist=0.05, bb_upper=1.1, bb_middle=1.0, bb_lower=0.9, atr_14=0.01,
    )  # fmt: skip
    market = snapshot(
        *(
            symbol_snapshot(s, indicators=indicators).model_copy(update={"candles": _candles(p)})
            for s, p in PRICES.items()
        )
    )
    book = portfolio(position("BTCUSDT"), position("ETHUSDT"))
    limits = TradingLimits()
    prompt = build_prompt(market, book, limits, DEFAULT_SYMBOLS)
    prompt_samples = _timings(
        lambda: build_prompt(market, book, limits, DEFAULT_SYMBOLS).sha256, PROMPT_RUNS
    )

    cases = load_cases()

    def parse_one(text: str) -> None:
        with contextlib.suppress(ParseError):
            parse_answer(text)

    parse_samples = [
        s
        for case in cases
        for s in _timings(functools.partial(parse_one, case.output), PARSE_ROUNDS)
    ]
    total = sum(parse_samples)

    print(f"prompt: {len(prompt.text)} characters, 6 symbols x 100 candles, 2 open positions")
    print(f"corpus: {len(cases)} model outputs x {PARSE_ROUNDS} rounds\n")
    print(f"{'operation':<22}{'runs':>7}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}"
          f"{'max ms':>10}{'goal':>8}")  # fmt: skip
    print(_row("prompt build + sha256", prompt_samples, 5.0))
    print(_row("parse one output", parse_samples, 1.0))
    print(f"\nparse throughput: {len(parse_samples) / total:,.0f} outputs/s")


if __name__ == "__main__":
    main()
