"""Model text that Postgres or strict JSON refuse still reaches the books, visibly replaced."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from services.common.contracts import (
    Action,
    Decision,
    ErrorReply,
    Heartbeat,
    LlmCall,
    Message,
    Reason,
)
from services.common.text import REPLACEMENT, clean_text, readable_json
from tests import builders

NOW = datetime(2025, 1, 1, 12, tzinfo=UTC)
DIRTY = "a\x00b\ud800c\udfffd"
CLEANED = "a\ufffdb\ufffdc\ufffdd"


def decision(**fields: Any) -> Decision:
    return builders.validated(builders.decision(builders.hold(), agent_id="gpt"), **fields)


def action(**fields: Any) -> Action:
    return Action.model_validate({"action": "BUY", **fields})


def llm_call(**fields: Any) -> LlmCall:
    return builders.llm_call("gpt", "c1:gpt:d1:1", builders.NOW, **fields)


def heartbeat(**fields: Any) -> Heartbeat:
    off = builders.disabled_heartbeat("gpt", "gpt-test", "no key")
    return builders.validated(off, **fields)


def reason(**fields: Any) -> Reason:
    return Reason.model_validate({"code": "x", "message": "", **fields})


def error_reply(**fields: Any) -> ErrorReply:
    return ErrorReply.model_validate({"code": "bad_request", "message": "", **fields})


# Every field a model's answer or a provider's reply can fill.
MODEL_TEXT: list[tuple[Callable[..., Message], str]] = [
    *((decision, f) for f in ("reasoning", "model", "error", "prompt", "raw_response", "thinking")),
    (action, "symbol"),
    (action, "invalidation"),
    (llm_call, "model"),
    (llm_call, "error"),
    (heartbeat, "reason"),
    (reason, "message"),
    (error_reply, "message"),
]


@pytest.mark.parametrize(
    ("build", "field"), MODEL_TEXT, ids=[f"{b.__name__}.{f}" for b, f in MODEL_TEXT]
)
def test_every_model_text_field_is_cleaned_built_and_decoded(
    build: Callable[..., Message], field: str
) -> None:
    built = build(**{field: DIRTY})
    assert getattr(built, field) == CLEANED
    wire = built.to_bytes()
    wire.decode("utf-8")  # storable and sendable: valid UTF-8
    assert type(built).model_validate_json(wire) == built
    # The same message as another program would write it: Python's json escapes NUL
    # as \u0000 and a lone surrogate as \ud800.
    foreign = json.loads(wire)
    foreign[field] = DIRTY
    text = json.dumps(foreign)
    assert "\\u0000" in text and "\\ud800" in text
    for data in (text, text.encode()):
        assert getattr(type(built).model_validate_json(data), field) == CLEANED


def test_pydantic_refuses_a_lone_surrogate_escape_by_itself() -> None:
    # Why Message.model_validate_json repairs: the JSON parser refuses the whole document
    # (a NUL escape it accepts, and the field validator cleans it).
    with pytest.raises(ValidationError, match="json_invalid"):
        Reason.__pydantic_validator__.validate_json('{"code": "x", "message": "\\ud800"}')
    assert Reason.model_validate_json('{"code": "x", "message": "\\u0000"}').message == "\ufffd"


def test_bytes_that_are_not_utf8_and_raw_control_characters_arrive_replaced() -> None:
    data = b'{"code": "x", "message": "caf\xe9 \xed\xa0\x80 tab\x01 nul\x00 end"}'
    message = Reason.model_validate_json(data).message
    assert message.startswith(f"caf{REPLACEMENT} {REPLACEMENT}")
    assert message.endswith(f"tab\x01 nul{REPLACEMENT} end")


def test_what_strict_json_reads_is_untouched() -> None:
    # A surrogate pair is one character; an escaped backslash before "ud800" is text.
    text = '{"code": "x", "message": "\\ud83d\\ude00 \\\\ud800 \\"q\\" \\n"}'
    assert readable_json(text) == text
    assert Reason.model_validate_json(text).message == '\U0001f600 \\ud800 "q" \n'


def test_the_repair_keeps_numbers_exactly() -> None:
    built = decision(
        actions=(action(symbol="BTCUSDT", margin_usd=Decimal("12.345678901234567890")),),
        reasoning="x",
    )
    foreign = json.loads(built.to_bytes())
    foreign["reasoning"] = "\ud800"
    back = Decision.model_validate_json(json.dumps(foreign))
    assert back.actions == built.actions
    assert back.actions[0].margin_usd == Decimal("12.345678901234567890")


@pytest.mark.parametrize(
    "data",
    [b"", b"{", b"\xff\xfe", b'{"code": "x", "message": "\\ud800"', b"not json \\ud800"],
)
def test_what_is_not_json_is_still_refused(data: bytes) -> None:
    with pytest.raises(ValidationError, match="json_invalid"):
        Reason.model_validate_json(data)


def test_a_bad_message_is_refused_for_its_real_fault_after_the_repair() -> None:
    with pytest.raises(ValidationError, match="action") as caught:
        Action.model_validate_json('{"action": "YOLO", "invalidation": "\\ud800"}')
    assert [e["loc"] for e in caught.value.errors()] == [("action",)]


# Any code point, with the troublesome ones (both halves of a pair among them) drawn often.
ANY_TEXT = st.lists(
    st.one_of(
        st.sampled_from(["\x00", "\ud800", "\udfff", "\ud83d", "\ude00", "\ud83d\ude00"]),
        st.sampled_from(["\\", '"', "\x01", "\n", "\\ud800", "\\u0000"]),
        st.characters(codec=None, exclude_categories=()),
    ),
    max_size=30,
).map("".join)


@given(ANY_TEXT)
def test_any_text_round_trips_storable_and_changed_only_where_it_had_to(text: str) -> None:
    cleaned = clean_text(text)
    cleaned.encode("utf-8")
    assert "\x00" not in cleaned
    # What a JSON reader makes of the text (halves of a pair join), with U+FFFD for what
    # no store could take.
    read = json.loads(json.dumps(text))
    expected = "".join(
        REPLACEMENT if c == "\x00" or 0xD800 <= ord(c) <= 0xDFFF else c for c in read
    )
    assert cleaned == expected
    for wire in (json.dumps({"code": "x", "message": text}), reason(message=text).to_bytes()):
        assert Reason.model_validate_json(wire).message == cleaned
