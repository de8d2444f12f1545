"""Every foundation rule, rejecting and accepting at its boundary."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.common.contracts import Action, Portfolio, Reason, TradeAction
from services.common.instruments import InstrumentTable, opening_cost
from services.common.rules import ActionContext, judge
from services.common.settings import DEFAULT_SYMBOLS, TradingLimits
from services.risk.validator import Validator, trades_nothing
from tests.builders import NOW, buy, close, decision, hold, portfolio, sell

LIMITS = TradingLimits()
VALIDATOR = Validator.for_symbols(LIMITS, DEFAULT_SYMBOLS)


def codes(book: Portfolio, *actions: Action) -> list[tuple[str, ...]]:
    verdict = VALIDATOR.validate(decision(*actions), book, NOW)
    return [tuple(r.code for r in result.reasons) for result in verdict.results]


@pytest.mark.parametrize(
    ("margin", "ok"), [("10", True), ("30", True), ("9.99", False), ("30.01", False)]
)
def test_margin_boundaries(margin: str, ok: bool) -> None:
    expected = () if ok else ("margin_out_of_range",)
    assert codes(portfolio(), buy(margin=margin)) == [expected]


@pytest.mark.parametrize(("leverage", "ok"), [(1, True), (10, True), (0, False), (11, False)])
def test_leverage_boundaries(leverage: int, ok: bool) -> None:
    expected = () if ok else ("leverage_out_of_range",)
    assert codes(portfolio(), sell(leverage=leverage)) == [expected]


def test_an_open_needs_fewer_than_three_positions_open() -> None:
    assert codes(portfolio("ETHUSDT", "SOLUSDT"), buy("BTCUSDT")) == [()]
    assert codes(portfolio("ETHUSDT", "SOLUSDT", "BNBUSDT"), buy("BTCUSDT")) == [
        ("too_many_positions",)
    ]


def test_opens_approved_earlier_in_the_decision_take_a_slot() -> None:
    book = portfolio("ETHUSDT")
    assert codes(book, buy("BTCUSDT"), sell("SOLUSDT"), buy("XRPUSDT")) == [
        (),
        (),
        ("too_many_positions",),
    ]


def test_a_rejected_open_takes_no_slot() -> None:
    book = portfolio("ETHUSDT", "SOLUSDT")
    assert codes(book, buy("BTCUSDT", margin="50"), buy("XRPUSDT")) == [
        ("margin_out_of_range",),
        (),
    ]


def test_balance_must_cover_margin_plus_opening_fee_exactly() -> None:
    # 20 USD at 5x: notional 100, fee 100 x 0.0005 = 0.05 (no price: the unrounded notional).
    btc = InstrumentTable()["BTCUSDT"]
    assert opening_cost(btc, Decimal(20), 5, None, LIMITS.taker_fee_rate) == Decimal("20.05")
    # Unrealized profit keeps equity high enough for the 90 % margin-utilisation rule.
    assert codes(portfolio(balance="20.05", unrealized="80"), buy(margin="20", leverage=5)) == [()]
    assert codes(portfolio(balance="20.04", unrealized="80"), buy(margin="20", leverage=5)) == [
        ("insufficient_balance",)
    ]


def test_balance_counts_opens_approved_earlier_in_the_decision() -> None:
    two = (buy("BTCUSDT", "20", 5), buy("ETHUSDT", "20", 5))
    assert codes(portfolio(balance="40.10", unrealized="60"), *two) == [(), ()]
    assert codes(portfolio(balance="40.09", unrealized="60"), *two) == [
        (),
        ("insufficient_balance",),
    ]


@pytest.mark.parametrize(
    ("action", "missing"),
    [
        (buy(margin=None), "margin_usd"),
        (buy(leverage=None), "leverage"),
        (Action(action=TradeAction.SELL, margin_usd=Decimal(20), leverage=2), "symbol"),
        (close(None), "symbol"),
    ],
)
def test_missing_fields_are_named_once(action: Action, missing: str) -> None:
    verdict = VALIDATOR.validate(decision(action), portfolio(), NOW)
    (result,) = verdict.results
    assert not result.approved
    assert [r.code for r in result.reasons] == ["missing_field"]
    assert missing in result.reasons[0].message


def test_close_needs_an_open_position_on_the_symbol() -> None:
    assert codes(portfolio(), close("BTCUSDT")) == [("no_open_position",)]
    assert codes(portfolio("BTCUSDT"), close("BTCUSDT")) == [()]


def test_no_open_on_a_symbol_already_open() -> None:
    assert codes(portfolio("BTCUSDT"), buy("BTCUSDT")) == [("position_already_open",)]
    assert codes(portfolio("BTCUSDT"), sell("ETHUSDT")) == [()]


def test_at_most_one_action_per_symbol_the_first_wins() -> None:
    assert codes(portfolio("BTCUSDT"), close("BTCUSDT"), sell("BTCUSDT")) == [
        (),
        ("duplicate_symbol", "position_already_open"),
    ]
    assert codes(portfolio(), buy("BTCUSDT"), buy("ETHUSDT")) == [(), ()]


def test_only_symbols_of_the_universe_can_be_opened() -> None:
    narrow = Validator.for_symbols(LIMITS, ("BTCUSDT",))
    book = portfolio("ETHUSDT")
    verdict = narrow.validate(decision(buy("ETHUSDT"), buy("BTCUSDT")), book, NOW)
    assert [tuple(r.code for r in res.reasons) for res in verdict.results] == [
        ("unknown_symbol", "position_already_open"),
        (),
    ]
    # A position on a symbol dropped from the universe can still be closed.
    verdict = narrow.validate(decision(close("ETHUSDT")), book, NOW)
    assert verdict.results[0].approved


def test_hold_is_always_approved() -> None:
    silly = Action(action=TradeAction.HOLD, symbol="NOPE", margin_usd=Decimal(999), leverage=99)
    full = portfolio("ETHUSDT", "SOLUSDT", "BNBUSDT", balance="0")
    assert codes(full, hold(), silly) == [(), ()]


def test_every_objection_is_reported() -> None:
    assert codes(portfolio(balance="1"), buy(margin="5", leverage=20)) == [
        (
            "margin_out_of_range",
            "leverage_out_of_range",
            "insufficient_balance",
            "margin_utilisation_exceeded",
        )
    ]


def test_verdict_has_one_result_per_action_in_order() -> None:
    proposed = decision(hold(), buy("BTCUSDT"), close("ETHUSDT"))
    verdict = VALIDATOR.validate(proposed, portfolio(), NOW)
    assert verdict.verdict_id == proposed.decision_id == "c1:momentum"
    assert verdict.decision == proposed
    assert [(r.index, r.action, r.approved) for r in verdict.results] == [
        (0, proposed.actions[0], True),
        (1, proposed.actions[1], True),
        (2, proposed.actions[2], False),
    ]


def test_a_new_rule_is_one_function() -> None:
    def no_doge(ctx: ActionContext) -> Reason | None:
        if ctx.action.symbol == "DOGEUSDT":
            return Reason(code="no_doge", message="not today")
        return None

    ctx = ActionContext(
        action=buy("DOGEUSDT"),
        portfolio=portfolio(),
        limits=LIMITS,
        symbols=frozenset(["DOGEUSDT"]),
    )
    assert [r.code for r in judge(ctx, (no_doge,))] == ["no_doge"]
    assert judge(ctx) == ()


def test_holds_need_no_portfolio_and_a_trade_does() -> None:
    holding = decision(hold(), hold())
    assert trades_nothing(holding) and trades_nothing(decision())
    verdict = VALIDATOR.validate(holding, None, NOW)
    assert [(r.approved, r.reasons) for r in verdict.results] == [(True, ()), (True, ())]
    # The same HOLDs judged with a portfolio: the same verdict.
    assert VALIDATOR.validate(holding, portfolio(), NOW) == verdict
    trading = decision(hold(), buy())
    assert not trades_nothing(trading)
    with pytest.raises(ValueError, match="its portfolio is needed"):
        VALIDATOR.validate(trading, None, NOW)
