"""The built-in baselines: each does what it says, deterministically, within the limits."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from services.agent.baselines import BASELINES, BaselineConfig
from services.agent.baselines.sizing import Book, Plan
from services.agent.strategy import Answer, Strategy
from services.common.contracts import (
    Decision,
    Indicators,
    MarketSnapshot,
    Portfolio,
    PositionSide,
    TradeAction,
)
from services.common.instruments import Instrument, InstrumentTable
from services.common.settings import DEFAULT_SYMBOLS, TradingLimits
from services.risk.validator import Validator
from tests.builders import NOW, PRICES, portfolio, position, snapshot, symbol_snapshot

LIMITS = TradingLimits()


def baseline(name: str, *, seed: int = 42, limits: TradingLimits = LIMITS) -> Strategy:
    return BASELINES[name](BaselineConfig("momentum", limits, DEFAULT_SYMBOLS, seed))


def only(symbol: str, **indicators: float) -> MarketSnapshot:
    return snapshot(symbol_snapshot(symbol, indicators=Indicators(**indicators)))


def kinds(result: Answer) -> list[tuple[TradeAction, str | None]]:
    return [(a.action, a.symbol) for a in result.actions]


# ---------------------------------------------------------------- ema-cross


def test_ema_cross_goes_long_on_an_up_cross_with_stop_and_target() -> None:
    result = baseline("ema-cross").decide(
        only("BTCUSDT", ema_20=50_500, ema_50=50_000, atr_14=400), portfolio()
    )
    (action,) = result.actions
    assert (action.action, action.symbol, action.leverage) == (TradeAction.BUY, "BTCUSDT", 3)
    assert action.margin_usd == Decimal(20)
    assert action.stop_loss == Decimal("49200.0")  # two ATRs under 50,000
    assert action.take_profit == Decimal("51600.0")  # twice the risk above
    assert "EMA20" in result.reasoning


def test_ema_cross_closes_when_the_averages_cross_back() -> None:
    book = portfolio(position("BTCUSDT"))
    down = only("BTCUSDT", ema_20=49_000, ema_50=50_000)
    up = only("BTCUSDT", ema_20=51_000, ema_50=50_000)
    assert kinds(baseline("ema-cross").decide(down, book)) == [(TradeAction.CLOSE, "BTCUSDT")]
    assert kinds(baseline("ema-cross").decide(up, book)) == [(TradeAction.HOLD, None)]


def test_ema_cross_holds_without_indicators_or_trend() -> None:
    assert kinds(baseline("ema-cross").decide(only("BTCUSDT"), portfolio())) == [
        (TradeAction.HOLD, None)
    ]
    down = only("ETHUSDT", ema_20=2_900, ema_50=3_000)
    assert kinds(baseline("ema-cross").decide(down, portfolio())) == [(TradeAction.HOLD, None)]


# ---------------------------------------------------------------- rsi-reversion


def test_rsi_reversion_buys_oversold_and_sells_overbought() -> None:
    rsi = baseline("rsi-reversion")
    low = rsi.decide(only("ETHUSDT", rsi_14=29.9), portfolio()).actions[0]
    high = rsi.decide(only("ETHUSDT", rsi_14=70.1), portfolio()).actions[0]
    assert (low.action, low.leverage) == (TradeAction.BUY, 2)
    assert high.action == TradeAction.SELL
    assert high.stop_loss is not None and high.take_profit is not None
    assert high.take_profit < PRICES["ETHUSDT"] < high.stop_loss
    for calm in (30.0, 50.0, 70.0):
        assert kinds(rsi.decide(only("ETHUSDT", rsi_14=calm), portfolio())) == [
            (TradeAction.HOLD, None)
        ]


def test_rsi_reversion_closes_near_fifty() -> None:
    rsi = baseline("rsi-reversion")
    long = portfolio(position("ETHUSDT", side=PositionSide.LONG))
    short = portfolio(position("ETHUSDT", side=PositionSide.SHORT))
    assert kinds(rsi.decide(only("ETHUSDT", rsi_14=46), long)) == [(TradeAction.CLOSE, "ETHUSDT")]
    assert kinds(rsi.decide(only("ETHUSDT", rsi_14=35), long)) == [(TradeAction.HOLD, None)]
    assert kinds(rsi.decide(only("ETHUSDT", rsi_14=54), short)) == [(TradeAction.CLOSE, "ETHUSDT")]
    assert kinds(rsi.decide(only("ETHUSDT", rsi_14=65), short)) == [(TradeAction.HOLD, None)]


# ---------------------------------------------------------------- buy-and-hold


def test_buy_and_hold_buys_btc_once_and_keeps_it() -> None:
    hodl = baseline("buy-and-hold")
    (action,) = hodl.decide(snapshot(), portfolio()).actions
    assert (action.action, action.symbol, action.leverage) == (TradeAction.BUY, "BTCUSDT", 1)
    assert action.margin_usd == LIMITS.max_margin_usd
    assert action.take_profit is None
    assert action.stop_loss is not None and action.stop_loss < PRICES["BTCUSDT"]
    holding = portfolio(position("BTCUSDT"))
    assert kinds(hodl.decide(snapshot(), holding)) == [(TradeAction.HOLD, None)]
    stopped_out = portfolio(total_trades=1)
    assert kinds(hodl.decide(snapshot(), stopped_out)) == [(TradeAction.HOLD, None)]


# ---------------------------------------------------------------- random


def test_random_is_deterministic_for_a_seed_and_a_snapshot() -> None:
    cycles = [snapshot(cycle_id=f"c{n}") for n in range(30)]
    first = [baseline("random").decide(s, portfolio()) for s in cycles]
    again = [baseline("random").decide(s, portfolio()) for s in cycles]
    other_seed = [baseline("random", seed=7).decide(s, portfolio()) for s in cycles]
    assert first == again
    assert first != other_seed
    assert len({r.actions for r in first}) > 3, "the cycle id must vary the choice"


# ---------------------------------------------------------------- every baseline, any market

indicator_values = st.one_of(st.none(), st.floats(0, 100, allow_nan=False))


@st.composite
def markets(draw: st.DrawFn) -> MarketSnapshot:
    symbols = []
    for symbol, price in PRICES.items():
        scale = float(price)
        indicators = Indicators(
            rsi_14=draw(indicator_values),
            ema_20=draw(st.floats(scale * 0.9, scale * 1.1)),
            ema_50=draw(st.floats(scale * 0.9, scale * 1.1)),
            atr_14=draw(st.one_of(st.none(), st.floats(0, scale * 0.2))),
        )
        symbols.append(symbol_snapshot(symbol, indicators=indicators))
    return snapshot(*symbols, cycle_id=f"c{draw(st.integers(0, 10_000))}")


@st.composite
def portfolios(draw: st.DrawFn) -> Portfolio:
    held = draw(st.lists(st.sampled_from(list(PRICES)), unique=True, max_size=4))
    sides = [draw(st.sampled_from(list(PositionSide))) for _ in held]
    balance = draw(st.decimals("0", "200", places=2))
    return portfolio(
        *(position(s, side=side) for s, side in zip(held, sides, strict=True)),
        balance=balance,
        total_trades=draw(st.integers(0, 2)),
    )


limit_sets = st.builds(
    TradingLimits,
    max_open_positions=st.integers(1, 4),
    max_leverage=st.integers(1, 10),
)


@settings(max_examples=150, deadline=None)
@given(
    name=st.sampled_from(sorted(BASELINES)),
    market=markets(),
    book=portfolios(),
    limits=limit_sets,
)
def test_baselines_respect_the_limits_and_are_deterministic(
    name: str, market: MarketSnapshot, book: Portfolio, limits: TradingLimits
) -> None:
    result = baseline(name, limits=limits).decide(market, book)
    assert result == baseline(name, limits=limits).decide(market, book)
    assert result.actions

    open_now = {p.symbol for p in book.positions}
    symbols = [a.symbol for a in result.actions if a.symbol is not None]
    assert len(symbols) == len(set(symbols)), "one action per symbol"
    opens = [a for a in result.actions if a.action in (TradeAction.BUY, TradeAction.SELL)]
    if opens:
        assert len(open_now) + len(opens) <= limits.max_open_positions
    spent = Decimal(0)
    for action in opens:
        assert action.symbol not in open_now
        assert action.margin_usd is not None and action.leverage is not None
        assert limits.min_margin_usd <= action.margin_usd <= limits.max_margin_usd
        assert 1 <= action.leverage <= limits.max_leverage
        price = PRICES[str(action.symbol)]
        assert action.stop_loss is not None
        long = action.action == TradeAction.BUY
        assert (action.stop_loss < price) if long else (action.stop_loss > price)
        # Inside the liquidation distance (about price / leverage).
        assert abs(price - action.stop_loss) < price / action.leverage
        if action.take_profit is not None:
            assert (action.take_profit > price) if long else (action.take_profit < price)
        spent += action.margin_usd * (1 + action.leverage * limits.taker_fee_rate)
    assert spent <= book.account.balance
    for action in result.actions:
        if action.action == TradeAction.CLOSE:
            assert action.symbol in open_now

    # The same judgement from the other side: risk approves everything a baseline proposes.
    decision = _as_decision(result)
    verdict = Validator.for_symbols(limits, DEFAULT_SYMBOLS).validate(decision, book, NOW)
    assert [r.reasons for r in verdict.results if not r.approved] == []


def _as_decision(result: Answer) -> Decision:
    return Decision(
        decision_id="c:momentum",
        cycle_id="c",
        agent_id="momentum",
        decided_at=NOW,
        decision_deadline=NOW,
        actions=result.actions,
    )


def test_a_plan_counts_the_opening_fee_on_the_step_rounded_notional() -> None:
    # Step 0.01 at 1000: 20.5 USD x 5 buys 0.10, not 0.1025, so the fee is 0.05 (cost 20.55).
    coarse = InstrumentTable(
        [Instrument("BTCUSDT", Decimal("0.1"), Decimal("0.01"), Decimal(5), Decimal("0.005"))]
    )
    plan = Plan(Book(LIMITS, {}, Decimal("30.575"), None, coarse))
    price = Decimal(1000)

    def opens(symbol: str, margin: str) -> bool:
        return plan.open(
            PositionSide.LONG,
            symbol,
            price,
            preferred_margin=Decimal(margin),
            preferred_leverage=5,
            stop_distance=None,
            note=symbol,
        )

    assert opens("BTCUSDT", "20.5")
    # 10.025 left covers exactly 10 USD at 5x (10 + 0.025): the old formula left 10.02375.
    assert opens("ETHUSDT", "10")
    assert [a.margin_usd for a in plan.actions] == [Decimal("20.5"), Decimal("10.00")]
