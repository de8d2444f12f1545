"""The rules that need the cycle's prices, the instrument table or the deadline, at their
boundaries."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from services.common.contracts import Action, Decision, Portfolio, TradeAction
from services.common.instruments import Instrument, InstrumentTable, can_afford, opening_cost
from services.common.settings import DEFAULT_SYMBOLS, TradingLimits
from services.risk.validator import Validator
from tests.builders import NOW, buy, decision, portfolio

LIMITS = TradingLimits()
BTC = "BTCUSDT"
# A made-up instrument with round numbers: step 0.01, min notional 50, 0.5 % maintenance.
TABLE = InstrumentTable(
    [Instrument(BTC, Decimal("0.1"), Decimal("0.01"), Decimal(50), Decimal("0.005"))]
)
VALIDATOR = Validator.for_symbols(LIMITS, DEFAULT_SYMBOLS, instruments=TABLE)
PRICES = {BTC: Decimal(1000)}


def codes(book: Portfolio, proposed: Decision) -> list[tuple[str, ...]]:
    verdict = VALIDATOR.validate(proposed, book, NOW, PRICES)
    return [tuple(r.code for r in result.reasons) for result in verdict.results]


def opening(action: TradeAction, **levels: str) -> Action:
    return Action(
        action=action,
        symbol=BTC,
        margin_usd=Decimal(20),
        leverage=5,
        **{k: Decimal(v) for k, v in levels.items()},
    )


def test_quantity_after_rounding_must_reach_the_min_notional() -> None:
    # 10 x 5 / 1000 = 0.05 BTC = 50 USD: exactly the minimum.
    assert codes(portfolio(), decision(buy(BTC, "10", 5))) == [()]
    # 10 x 4.99.. cannot be asked; 10 x 4 = 40 USD is under it.
    assert codes(portfolio(), decision(buy(BTC, "10", 4))) == [("below_min_notional",)]


def test_stop_and_target_must_be_on_the_right_side_of_the_entry() -> None:
    long_ok = opening(TradeAction.BUY, stop_loss="999.9", take_profit="1000.1")
    assert codes(portfolio(), decision(long_ok)) == [()]
    assert codes(portfolio(), decision(opening(TradeAction.BUY, stop_loss="1000"))) == [
        ("stop_loss_invalid",)
    ]
    assert codes(portfolio(), decision(opening(TradeAction.BUY, take_profit="1000"))) == [
        ("take_profit_invalid",)
    ]
    short_ok = opening(TradeAction.SELL, stop_loss="1000.1", take_profit="999.9")
    assert codes(portfolio(), decision(short_ok)) == [()]
    assert codes(portfolio(), decision(opening(TradeAction.SELL, take_profit="1000"))) == [
        ("take_profit_invalid",)
    ]


def test_a_stop_beyond_the_liquidation_price_is_rejected() -> None:
    # 0.1 BTC long at 1000 with 20 USD: liquidation (20 - 100) / (0.1 x 0.005 - 0.1) = 804.02
    assert codes(portfolio(), decision(opening(TradeAction.BUY, stop_loss="804.1"))) == [()]
    assert codes(portfolio(), decision(opening(TradeAction.BUY, stop_loss="804"))) == [
        ("stop_loss_invalid",)
    ]


def test_total_margin_in_use_is_capped_at_90_percent_of_equity() -> None:
    # Equity 100 with 70 in use: 20 more makes 90, the cap; 21 does not fit.
    book = portfolio(balance="30", margin_used="70")
    assert codes(book, decision(buy(BTC, "20", 5))) == [()]
    assert codes(book, decision(buy(BTC, "21", 5))) == [("margin_utilisation_exceeded",)]


def deadline_codes(proposed: Decision, now: datetime, cycle: datetime | None) -> list[str]:
    verdict = VALIDATOR.validate(proposed, portfolio(), now, PRICES, cycle)
    return [r.code for result in verdict.results for r in result.reasons]


def test_a_decision_judged_after_its_deadline_is_rejected() -> None:
    proposed = decision(buy(BTC, "20", 5))
    assert deadline_codes(proposed, NOW, None) == []
    assert deadline_codes(proposed, NOW + timedelta(seconds=1), None) == ["past_deadline"]


def test_the_deadline_and_the_time_are_the_markets_and_risks_not_the_agents() -> None:
    # The agent claims it decided early and was given an hour: neither counts.
    boastful = decision(buy(BTC, "20", 5)).model_copy(
        update={
            "decided_at": NOW - timedelta(hours=1),
            "decision_deadline": NOW + timedelta(hours=1),
        }
    )
    announced = NOW - timedelta(seconds=1)
    assert deadline_codes(boastful, NOW, announced) == ["past_deadline"]
    assert deadline_codes(boastful, announced, announced) == []
    # An unknown cycle: the decision's deadline is all there is, still against risk's clock.
    assert deadline_codes(boastful, NOW + timedelta(hours=2), None) == ["past_deadline"]


def test_without_a_price_the_sizing_rules_abstain() -> None:
    verdict = VALIDATOR.validate(decision(buy(BTC, "10", 1)), portfolio(), NOW, {})
    assert verdict.results[0].approved


def test_the_opening_fee_is_on_the_notional_the_step_allows_as_the_ledger_charges() -> None:
    # 20.5 USD at 5x buys 0.1025 BTC at 1000, rounded down to 0.10: notional 100, fee 0.05.
    fee = LIMITS.taker_fee_rate
    assert opening_cost(TABLE[BTC], Decimal("20.5"), 5, Decimal(1000), fee) == Decimal("20.55")
    assert opening_cost(TABLE[BTC], Decimal("20.5"), 5, None, fee) == Decimal("20.55125")
    assert can_afford(Decimal("20.55"), Decimal("20.55"))
    assert not can_afford(Decimal("20.54"), Decimal("20.55"))
    proposed = decision(buy(BTC, "20.5", 5))
    assert codes(portfolio(balance="20.55", unrealized="80"), proposed) == [()]
    assert codes(portfolio(balance="20.54", unrealized="80"), proposed) == [
        ("insufficient_balance",)
    ]
