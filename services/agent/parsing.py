"""From what a model actually wrote to validated actions. Pure: no I/O, never guesses a trade.

Real answers wrap the JSON in code fences or prose, think aloud in ``<think>`` blocks, send
one action or a list, write numbers as strings ("$20", "3x", "80%") and name actions in
their own words (``long``, ``buy_to_enter``, ``close_position``) and spell tickers their way
(``BTC-PERP``, ``ETH/USDT:USDT``: see :mod:`services.agent.symbols`). All of that is accepted;
anything that still does not make a valid :class:`Action` is a :class:`ParseError` whose
message says what was wrong, so the model can be asked again with it.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from services.agent.strategy import Answer
from services.agent.symbols import SymbolError, to_symbol
from services.common.contracts import Action, TradeAction

MAX_REASONING_CHARS = 4000

ACTION_SYNONYMS: dict[str, TradeAction] = {
    **dict.fromkeys(
        ("buy", "long", "buy_to_enter", "open_long", "go_long", "enter_long", "bullish"),
        TradeAction.BUY,
    ),
    **dict.fromkeys(
        ("sell", "short", "sell_to_enter", "open_short", "go_short", "enter_short", "bearish"),
        TradeAction.SELL,
    ),
    **dict.fromkeys(
        ("close", "close_position", "exit", "close_long", "close_short", "flatten", "take_profit"),
        TradeAction.CLOSE,
    ),
    **dict.fromkeys(
        ("hold", "wait", "none", "no_action", "do_nothing", "stay", "pass", "neutral", "skip"),
        TradeAction.HOLD,
    ),
}
FIELD_SYNONYMS: dict[str, tuple[str, ...]] = {
    "action": ("action", "signal", "decision", "side", "type", "trade"),
    "symbol": ("symbol", "coin", "asset", "ticker", "pair", "market"),
    "margin_usd": ("margin_usd", "margin", "size_usd", "usd", "amount_usd", "position_size_usd"),
    "leverage": ("leverage", "lev"),
    "stop_loss": ("stop_loss", "stoploss", "stop", "sl"),
    "take_profit": ("take_profit", "takeprofit", "target", "tp", "profit_target"),
    "confidence": ("confidence", "conviction"),
    "invalidation": ("invalidation", "invalidation_condition"),
}
LIST_KEYS = ("actions", "decisions", "trades", "orders")
REASONING_KEYS = ("reasoning", "rationale", "analysis", "explanation", "thoughts", "summary")

_THINK = re.compile(r"<think(?:ing)?>(.*?)</think(?:ing)?>", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
# An exponent counts only when digits follow it: "2e1" is 20, "20 EUR" is 20.
_NUMBER = re.compile(r"(?:[-+]?\d[\d,]*(?:\.\d+)?|[-+]?\.\d+)(?:[eE][-+]?\d+)?")
# Beyond this a number is nonsense, not a price: "1e999999" must not reach the arithmetic.
MAX_EXPONENT = 20


class ParseError(ValueError):
    """The answer holds no usable decision; the message is fit to show the model."""


def parse_answer(text: str | None) -> Answer:
    """The actions in a model's answer, or :class:`ParseError` saying why there are none."""
    if text is None or not text.strip():
        raise ParseError("empty answer: expected one JSON object with 'actions'")
    visible, thinking = _split_thinking(text)
    if not visible.strip():
        raise ParseError("the answer has only a <think> block and no JSON after it")
    first_error: ParseError | None = None
    for value, around in _json_candidates(visible):
        try:
            actions, reasoning = _decision_of(value)
        except ParseError as exc:
            first_error = first_error or exc
            continue
        return Answer(actions, (reasoning or around)[:MAX_REASONING_CHARS], thinking)
    if first_error is not None:
        raise first_error
    raise ParseError("no JSON object found in the answer")


def _split_thinking(text: str) -> tuple[str, str | None]:
    blocks = [m.strip() for m in _THINK.findall(text)]
    visible = _THINK.sub("", text)
    # A model cut off mid-thought, or one that only closes the tag, leaves half a block.
    lower = visible.lower()
    if "</think>" in lower:
        cut = lower.rindex("</think>")
        blocks.append(visible[:cut].strip())
        visible = visible[cut + len("</think>") :]
    elif "<think>" in lower:
        cut = lower.index("<think>")
        blocks.append(visible[cut + len("<think>") :].strip())
        visible = visible[:cut]
    thinking = "\n\n".join(b for b in blocks if b) or None
    return visible, thinking


def _json_candidates(text: str) -> list[tuple[Any, str]]:
    """Every JSON value in the text, fenced ones first, each with the prose around it."""
    found: list[tuple[Any, str]] = []
    for block in _FENCE.findall(text):
        found += [(v, _prose(_FENCE.sub("", text))) for v in _decode_all(block)]
    found += [(v, "") for v in _decode_all(text)]
    return found


def _decode_all(text: str) -> list[Any]:
    # Decimal keeps every digit a model wrote ("0.1" stays 0.1, "50123.456789" stays whole).
    decoder = json.JSONDecoder(parse_float=Decimal, parse_constant=_non_finite)
    values: list[Any] = []
    i = 0
    while i < len(text):
        if text[i] in "{[":
            try:
                value, end = decoder.raw_decode(text, i)
            except json.JSONDecodeError:
                i += 1
                continue
            if isinstance(value, dict | list):
                values.append(value)
                i = end
                continue
        i += 1
    return values


def _non_finite(name: str) -> str:
    # NaN and Infinity are not JSON numbers: kept as words, the field check refuses them by name.
    return name


def _prose(text: str) -> str:
    return " ".join(text.split())


def _decision_of(value: Any) -> tuple[tuple[Action, ...], str]:
    if isinstance(value, list):
        return _actions_of(value, "the list"), ""
    if not isinstance(value, dict):
        raise ParseError("expected a JSON object")
    reasoning = _reasoning_of(value)
    for key in LIST_KEYS:
        if key in value:
            items = value[key]
            if isinstance(items, dict):
                items = [items]
            if not isinstance(items, list):
                raise ParseError(f"'{key}' must be a list of actions")
            return _actions_of(items, f"'{key}'"), reasoning
    nested = value.get("decision")
    if isinstance(nested, dict):
        actions, inner = _decision_of(nested)
        return actions, reasoning or inner
    if _has_field(value, "action"):
        return _actions_of([value], "the object"), reasoning
    by_symbol = {k: v for k, v in value.items() if isinstance(v, dict) and _has_field(v, "action")}
    if by_symbol:
        return _actions_of([{"symbol": k, **v} for k, v in by_symbol.items()], "it"), reasoning
    raise ParseError("the JSON object has no 'actions' list (and no 'action' field)")


def _reasoning_of(value: dict[str, Any]) -> str:
    for key in REASONING_KEYS:
        text = value.get(key)
        if isinstance(text, str) and text.strip():
            return text.strip()
    return ""


def _has_field(item: dict[str, Any], field: str) -> bool:
    return any(k in item for k in FIELD_SYNONYMS[field])


def _field(item: dict[str, Any], field: str) -> Any:
    for key in FIELD_SYNONYMS[field]:
        if key in item and item[key] is not None:
            return item[key]
    return None


def _actions_of(items: list[Any], where: str) -> tuple[Action, ...]:
    if not items:
        raise ParseError(f"{where} holds no action (send HOLD to do nothing)")
    actions = [_action(item, n) for n, item in enumerate(items)]
    trades = [a for a in actions if a.action != TradeAction.HOLD]
    # "HOLD BTC, BUY ETH" means: buy ETH. HOLD only stands alone.
    return tuple(trades) or (Action(action=TradeAction.HOLD),)


def _action(item: Any, n: int) -> Action:
    if not isinstance(item, dict):
        raise ParseError(f"action {n} is not a JSON object")
    raw = _field(item, "action")
    if raw is None:
        raise ParseError(f"action {n} has no 'action' field")
    kind = ACTION_SYNONYMS.get(re.sub(r"[\s-]+", "_", str(raw).strip().lower()))
    if kind is None:
        raise ParseError(f"action {n}: unknown action {raw!r} (use BUY, SELL, CLOSE or HOLD)")
    if kind == TradeAction.HOLD:
        return Action(action=kind)
    fields: dict[str, Any] = {"action": kind}
    try:
        symbol = _field(item, "symbol")
        if symbol is not None:
            fields["symbol"] = to_symbol(symbol)
        for name in ("margin_usd", "stop_loss", "take_profit"):
            fields[name] = _decimal(_field(item, name), name)
        leverage = _decimal(_field(item, "leverage"), "leverage")
        if leverage is not None:
            if leverage != leverage.to_integral_value():
                raise ParseError(f"leverage must be a whole number, not {leverage}")
            fields["leverage"] = int(leverage)
        fields["confidence"] = _confidence(_field(item, "confidence"))
        invalidation = _field(item, "invalidation")
        if invalidation is not None:
            fields["invalidation"] = str(invalidation)
        action = Action.model_validate(fields)
    except (ParseError, SymbolError) as exc:
        raise ParseError(f"action {n}: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ParseError(f"action {n}: {problems}") from None
    if action.symbol is None:
        raise ParseError(f"action {n}: {kind.value} needs a 'symbol'")
    return action


def _decimal(raw: Any, name: str) -> Decimal | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        raise ParseError(f"{name} must be a number, not {raw!r}")
    if isinstance(raw, Decimal | int):
        return _finite(Decimal(raw), name, raw)
    if isinstance(raw, float):
        return _finite(Decimal(str(raw)), name, raw)
    match = _NUMBER.search(str(raw))
    if match is None:
        raise ParseError(f"{name} must be a number, not {raw!r}")
    try:
        value = Decimal(match.group().replace(",", ""))
    except InvalidOperation:
        raise ParseError(f"{name} must be a number, not {raw!r}") from None
    return _finite(value, name, raw)


def _finite(value: Decimal, name: str, raw: Any) -> Decimal:
    if not value.is_finite() or abs(value.adjusted()) > MAX_EXPONENT:
        raise ParseError(f"{name} must be a plain number, not {raw!r}")
    # "2E+1" is 20: written out, so it prints and stores like the number it is.
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value


def _confidence(raw: Any) -> float | None:
    value = _decimal(raw, "confidence")
    if value is None:
        return None
    percent = isinstance(raw, str) and "%" in raw
    if percent or Decimal(1) < value <= Decimal(100):
        value = value / 100
    return float(value)
