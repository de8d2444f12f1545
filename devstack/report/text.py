"""The report's figures as text: ``12.3 % [8.1, 16.0]`` for an interval in percent,
``—`` for a figure that is undefined, shares (0 to 1) in percent."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, TypeGuard

DASH = "—"
PERCENT = {"alpha"}  # percent figures whose key does not end in _pct
SHARES = {"win_rate", "exposure", "win_frequency"}  # from 0 to 1, shown in percent


def number(value: object, digits: int = 2) -> str:
    """A figure as text: ``—`` when undefined, ``digits`` decimals, three significant
    digits when smaller, scientific when very large."""
    if value is None:
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return DASH
        if abs(value) >= 1e6:
            return f"{value:.2e}"
        if value != 0.0 and abs(value) < 10.0 ** (-digits):  # three significant digits
            return f"{value:.3g}"
        return f"{value:,.{digits}f}"
    return str(value)


def unit(key: str) -> str:
    """`` %`` after a figure in percent, `` $`` after one in US dollars."""
    if key.endswith("_pct") or key in PERCENT:
        return " %"
    if key.endswith("_usd"):
        return " $"
    return ""


def is_interval(value: object) -> TypeGuard[Mapping[str, Any]]:
    return isinstance(value, Mapping) and {"value", "lower", "upper"} <= set(value)


def figure(key: str, value: object) -> str:
    """An agent's figure: ``12.3 % [8.1, 16.0]`` for an interval, ``0.92`` for a number,
    ``62.5 %`` for a share."""
    if key in SHARES and isinstance(value, int | float) and not isinstance(value, bool):
        return f"{number(value * 100.0, 1)} %"
    suffix = unit(key)
    digits = 1 if suffix == " %" else 2
    if is_interval(value):
        low, high = number(value["lower"], digits), number(value["upper"], digits)
        return f"{number(value['value'], digits)}{suffix} [{low}, {high}]"
    text = number(value, digits)
    return text if text == DASH else f"{text}{suffix}"


def p_value(value: object) -> str:
    if isinstance(value, int | float) and value < 0.001:
        return "< 0.001"
    return number(value, 3)
