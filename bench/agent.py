"""Agent benchmark: prompt build time and parse throughput on the model-output corpus.

``python -m bench.agent``. Both should be negligible next to a model call
(targets: prompt build p99 < 5 ms, parse p99 < 1 ms per output).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

from bench.measures import Better, Measure
from bench.sampling import percentile
from bench.table import print_measures
from services.agent.parsing import ParseError, parse_answer
from services.agent.prompt import build_prompt
from services.common.contracts import Candle, Indicators
from services.common.settings import DEFAULT_SYMBOLS, TradingLimits
from tests.agent.corpus import load_cases
from tests.builders import NOW, PRICES, portfolio, position, snapshot, symbol_snapshot

PROMPT_RUNS = 500
PARSE_ROUNDS = 200
PROMPT_TARGET_MS = 5.0
PARSE_TARGET_MS = 1.0


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


def measure(quick: bool = False) -> list[Measure]:
    prompt_runs, parse_rounds = (50, 10) if quick else (PROMPT_RUNS, PARSE_ROUNDS)
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
    build_prompt(market, book, limits, DEFAULT_SYMBOLS)  # warm-up
    prompt_samples = _timings(
        lambda: build_prompt(market, book, limits, DEFAULT_SYMBOLS).sha256, prompt_runs
    )

    cases = load_cases()

    def parse_one(text: str) -> None:
        with contextlib.suppress(ParseError):
            parse_answer(text)

    parse_samples = [
        s
        for case in cases
        for s in _timings(functools.partial(parse_one, case.output), parse_rounds)
    ]
    total = sum(parse_samples)

    prompt_ms = [s * 1000 for s in prompt_samples]
    parse_ms = [s * 1000 for s in parse_samples]
    return [
        Measure("agent", "prompt build + sha256 p99", percentile(prompt_ms, 99), "ms",
                target=PROMPT_TARGET_MS),
        Measure("agent", "parse one model output p99", percentile(parse_ms, 99), "ms",
                target=PARSE_TARGET_MS),
        Measure("agent", "parse throughput", len(parse_samples) / total, "outputs/s",
                Better.HIGHER),
    ]  # fmt: skip


def main() -> None:
    print_measures(measure())


if __name__ == "__main__":
    main()
