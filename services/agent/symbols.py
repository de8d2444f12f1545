"""Ticker spellings a model uses, mapped to the arena's symbol. Pure: no I/O.

Models write a perpetual the way their training data did: ``BTC``, ``btc``, ``BTCUSDT``,
``BTC/USDT``, ``BTC-USDT``, ``BTC_USDT``, ``BTCUSD``, ``BTC-PERP``, ``BTCUSDT-PERP``,
``BTCUSDT.P`` (TradingView), ``BTC-USDT-SWAP`` (OKX) or ``ETH/USDT:USDT`` (ccxt). Each is
one ticker, and all mean the USDT-margined perpetual ``BTCUSDT``. Anything else (spaces,
markup, prose, unknown separators, more than a ticker's length) is refused by name, never
reassembled into a symbol from whatever letters it holds.
"""

from __future__ import annotations

import re

QUOTE = "USDT"
# Longest first: "USDT" must win over "USD" in "BTCUSDT".
_QUOTES = "USDT|USD"
_SPELLING = re.compile(
    rf"""
    (?P<base>[A-Z0-9]{{1,12}}?)                     # BTC, 1000PEPE
    (?:
        [-/_]?(?:{_QUOTES})                           # BTCUSDT, BTC/USDT, BTC-USD
        (?::(?:{_QUOTES}))?                           # ccxt's settle currency: ETH/USDT:USDT
    )?
    (?:[-_]?PERP|-SWAP|\.P)?                          # BTC-PERP, BTCUSDT_PERP, BTCUSDT.P
    """,
    re.VERBOSE,
)
MAX_SHOWN = 40


class SymbolError(ValueError):
    """The value is not a ticker; the message names it, fit to show the model."""


def to_symbol(raw: object) -> str:
    """The arena's symbol for a ticker spelling (``btc-perp`` -> ``BTCUSDT``), or SymbolError."""
    # A JSON true or 42 is no ticker. ASCII only: upper() turns a few other letters into
    # ASCII ones (U+017F into "S").
    text = raw if isinstance(raw, str) and raw.isascii() else None
    match = _SPELLING.fullmatch(text.strip().upper()) if text is not None else None
    if match is None or match.group("base").isdigit():
        raise SymbolError(f"symbol {_shown(raw)} is not a ticker (write it like BTCUSDT)")
    return match.group("base") + QUOTE


def _shown(raw: object) -> str:
    # The value is named so the model can fix it, but a page of prose is not repeated.
    if not isinstance(raw, str):
        shown = repr(raw)
        return shown if len(shown) <= MAX_SHOWN else f"{shown[:MAX_SHOWN]}..."
    if len(raw) <= MAX_SHOWN:
        return repr(raw)
    return f"{raw[:MAX_SHOWN]!r}... ({len(raw)} characters)"
