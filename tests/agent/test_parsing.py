"""The parser against the corpus of realistic model outputs, and its edges."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from services.agent.parsing import ParseError, parse_answer
from services.common.contracts import Action
from tests.agent.corpus import Case, load_cases

CASES = load_cases()


def test_the_corpus_is_large_enough_and_covers_both_outcomes() -> None:
    assert len(CASES) >= 30
    assert sum(c.error is not None for c in CASES) >= 8
    assert sum(c.actions is not None for c in CASES) >= 20


def expected(spec: dict[str, Any]) -> Action:
    fields = dict(spec)
    for name in ("margin_usd", "stop_loss", "take_profit"):
        if name in fields:
            fields[name] = Decimal(fields[name])
    return Action.model_validate(fields)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_corpus_case(case: Case) -> None:
    if case.error is not None:
        with pytest.raises(ParseError) as caught:
            parse_answer(case.output)
        assert case.error in str(caught.value)
        return
    assert case.actions is not None
    parsed = parse_answer(case.output)
    assert parsed.actions == tuple(expected(a) for a in case.actions)
    if case.reasoning is not None:
        assert case.reasoning in parsed.reasoning
    if case.thinking is not None:
        assert parsed.thinking is not None and case.thinking in parsed.thinking


def test_none_is_an_empty_answer() -> None:
    with pytest.raises(ParseError, match="empty answer"):
        parse_answer(None)


def test_prose_becomes_the_reasoning_when_the_json_has_none() -> None:
    parsed = parse_answer('BTC is calm today.\n```json\n{"actions": [{"action": "HOLD"}]}\n```')
    assert parsed.reasoning == "BTC is calm today."


def test_parse_never_raises_anything_but_parse_error_on_odd_input() -> None:
    odd = ['{"actions": [1, 2]}', "[[]]", '{"actions": "BUY"}', '{"action": true}', "{" * 500]
    for text in odd:
        with pytest.raises(ParseError):
            parse_answer(text)


def buy(**fields: str) -> str:
    body = ", ".join(f'"{k}": {v}' for k, v in fields.items())
    return f'{{"action": "BUY", "symbol": "BTC", {body}}}'


def test_json_numbers_keep_every_digit() -> None:
    (action,) = parse_answer(
        buy(margin_usd="20.1", stop_loss="50123.45678901234567", take_profit="98765432109876543")
    ).actions
    assert action.margin_usd == Decimal("20.1")
    assert action.stop_loss == Decimal("50123.45678901234567")
    assert action.take_profit == Decimal("98765432109876543")


@pytest.mark.parametrize("written", ["2e1", '"2e1"', '"2E+1 USD"', "20.0", '"$2.0e1"'])
def test_exponents_mean_what_they_say(written: str) -> None:
    (action,) = parse_answer(buy(margin_usd=written, leverage='"3e0x"')).actions
    assert action.margin_usd == Decimal(20)
    assert action.leverage == 3


@pytest.mark.parametrize("written", ["1e99", '"1e-99"', "NaN", "Infinity", '"-Infinity"'])
def test_absurd_or_non_finite_numbers_are_refused_by_name(written: str) -> None:
    with pytest.raises(ParseError, match="margin_usd must be a"):
        parse_answer(buy(margin_usd=written))
