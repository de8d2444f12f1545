"""Ticker spellings map to the traded symbol; anything else is refused by name."""

from __future__ import annotations

import pytest

from services.agent.parsing import ParseError, parse_answer
from services.agent.symbols import SymbolError, to_symbol


@pytest.mark.parametrize(
    ("written", "symbol"),
    [
        ("BTCUSDT", "BTCUSDT"),
        ("BTCUSDT-PERP", "BTCUSDT"),
        ("BTC-PERP", "BTCUSDT"),
        ("BTC/USDT", "BTCUSDT"),
        ("ETH/USDT:USDT", "ETHUSDT"),
        ("BTC-USDT", "BTCUSDT"),
        ("BTC_USDT", "BTCUSDT"),
        ("BTCUSD", "BTCUSDT"),
        ("btc", "BTCUSDT"),
        ("BTC", "BTCUSDT"),
        (" sol ", "SOLUSDT"),
        ("Doge/Usdt", "DOGEUSDT"),
        ("ETH-USDT-PERP", "ETHUSDT"),
        ("BTCUSDT_PERP", "BTCUSDT"),
        ("BTCUSDTPERP", "BTCUSDT"),
        ("BTCUSDT.P", "BTCUSDT"),
        ("BTC-USDT-SWAP", "BTCUSDT"),
        ("BTC/USD:USD", "BTCUSDT"),
        ("1000PEPE", "1000PEPEUSDT"),
        ("1000pepeusdt", "1000PEPEUSDT"),
    ],
)
def test_ticker_spellings_map_to_the_traded_symbol(written: str, symbol: str) -> None:
    assert to_symbol(written) == symbol


@pytest.mark.parametrize(
    "written",
    [
        "<script>window.pwned=1</script>",
        "BTC and ETH",
        "BTC USDT",
        "BTC, ETH",
        "BTC/EUR",
        "BTC:USDT",
        "BTC--USDT",
        "BTC/USDT/",
        "$BTC",
        "BTC!",
        "1000",
        "",
        "   ",
        "BTCUSDTBTCUSDTBTCUSDT",
        "B" * 13,
        "btcu\u017fdt",  # a long s, which upper() would make an ASCII S
        "\uff22\uff34\uff23",  # full-width BTC
        "BTC\x00",
        "BTC\nETH",
    ],
)
def test_what_is_not_a_ticker_is_refused_naming_the_value(written: str) -> None:
    with pytest.raises(SymbolError) as caught:
        to_symbol(written)
    assert f"symbol {written!r} is not a ticker" in str(caught.value)


def test_a_long_value_is_named_but_not_repeated_whole() -> None:
    written = "I would buy BTC here because " + "the trend is strong " * 500
    with pytest.raises(SymbolError) as caught:
        to_symbol(written)
    message = str(caught.value)
    assert message.startswith(f"symbol {written[:40]!r}... ({len(written)} characters)")
    assert len(message) < 150


def test_a_payload_in_the_symbol_is_a_parse_error_not_a_symbol() -> None:
    payload = "BTC<script>window.pwned=1</script>"
    answer = f'{{"actions": [{{"action": "BUY", "symbol": "{payload}", "margin_usd": 10}}]}}'
    with pytest.raises(ParseError, match="action 0: symbol 'BTC<script>") as caught:
        parse_answer(answer)
    assert "PWNED" not in str(caught.value)


@pytest.mark.parametrize("symbol", ["42", '["BTC"]', '{"coin": "BTC"}', "true"])
def test_a_symbol_that_is_not_a_string_is_a_parse_error(symbol: str) -> None:
    answer = f'{{"actions": [{{"action": "CLOSE", "symbol": {symbol}}}]}}'
    with pytest.raises(ParseError, match="is not a ticker"):
        parse_answer(answer)
