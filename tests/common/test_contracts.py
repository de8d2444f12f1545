"""Contracts: money stays exact on the wire, unknown fields and versions are refused."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError

from services.common.contracts import (
    Action,
    Decision,
    ErrorReply,
    Message,
    TradeAction,
    Usage,
)

NOW = datetime(2025, 1, 1, 12, tzinfo=UTC)


def _decision(**overrides: object) -> Decision:
    values: dict[str, object] = {
        "decision_id": "c1:momentum",
        "cycle_id": "c1",
        "agent_id": "momentum",
        "decided_at": NOW,
        "decision_deadline": NOW,
        "actions": (
            Action(
                action=TradeAction.BUY,
                symbol="BTCUSDT",
                margin_usd=Decimal("12.345678901234567890"),
                leverage=5,
                confidence=0.7,
            ),
        ),
        "usage": Usage(prompt_tokens=10, completion_tokens=5, cost_usd=Decimal("0.000123")),
    }
    values.update(overrides)
    return Decision.model_validate(values)


def test_decimal_round_trips_exactly_as_a_json_string() -> None:
    decision = _decision()
    wire = decision.to_bytes()
    assert b'"12.345678901234567890"' in wire
    back = Decision.model_validate_json(wire)
    assert back == decision
    assert back.actions[0].margin_usd == Decimal("12.345678901234567890")


def test_every_message_carries_schema_version_1() -> None:
    assert b'"schema_version":1' in _decision().to_bytes()


def test_unknown_schema_version_is_refused() -> None:
    data = _decision().model_dump(mode="json")
    data["schema_version"] = 2
    with pytest.raises(ValidationError, match="schema_version"):
        Decision.model_validate(data)


def test_unknown_field_is_refused() -> None:
    data = _decision().model_dump(mode="json")
    data["surprise"] = True
    with pytest.raises(ValidationError, match="surprise"):
        Decision.model_validate(data)


@pytest.mark.parametrize("agent_id", ["Momentum", "a.b", "a b", "a>", "", "x" * 65])
def test_agent_ids_must_be_one_subject_token(agent_id: str) -> None:
    with pytest.raises(ValidationError, match="agent_id"):
        _decision(agent_id=agent_id)


def test_confidence_is_bounded() -> None:
    with pytest.raises(ValidationError, match="confidence"):
        Action(action=TradeAction.HOLD, confidence=1.5)


def test_messages_are_immutable() -> None:
    decision = _decision()
    with pytest.raises(ValidationError):
        decision.reasoning = "changed"  # type: ignore[misc]


def test_error_reply_is_a_message() -> None:
    assert issubclass(ErrorReply, Message)
    assert ErrorReply(code="not_found", message="x").model_dump()["code"] == "not_found"


def test_decision_id_must_name_its_cycle_and_agent() -> None:
    with pytest.raises(ValidationError, match="decision_id must be"):
        _decision(decision_id="c1:someone-else")
