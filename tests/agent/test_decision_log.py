"""The decision audit trail file and the agent's memory of answered cycles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.agent.answered import Answered, RecentAnswers
from services.agent.decision_log import FILE_NAME, DecisionLog
from services.agent.trader import Outcome, TraderAnswer
from services.common.contracts import Decision
from tests import builders
from tests.builders import NOW


def decision(cycle_id: str, *, error: str | None = None) -> Decision:
    made = builders.decision(
        builders.buy("BTCUSDT", "20.5", 3),
        agent_id="claude",
        cycle_id=cycle_id,
        reasoning="trend up",
        model="claude-test",
    )
    return made.model_copy(update={"prompt_sha256": "ab" * 32, "error": error})


def test_each_decision_is_one_json_line_appended(tmp_path: Path) -> None:
    trail = DecisionLog.in_dir(tmp_path / "logs")
    assert trail.path == tmp_path / "logs" / FILE_NAME
    trail.append(decision("c1"))
    trail.append(decision("c2", error="parse error: no JSON"))
    first, second = (json.loads(x) for x in trail.path.read_text().splitlines())
    assert first == {
        "decision_id": "c1:claude",
        "agent": "claude",
        "cycle": "c1",
        "decided_at": NOW.isoformat(),
        "model": "claude-test",
        "actions": [
            {
                "schema_version": 1,
                "action": "BUY",
                "symbol": "BTCUSDT",
                "margin_usd": "20.5",
                "leverage": 3,
            }
        ],
        "reasoning": "trend up",
        "error": None,
        "prompt_sha256": "ab" * 32,
    }
    assert (second["cycle"], second["error"]) == ("c2", "parse error: no JSON")


def test_recent_answers_forget_the_oldest_cycle_first() -> None:
    answers = RecentAnswers(capacity=2)
    hold = TraderAnswer.hold(Outcome.DISABLED, "off")
    for cycle in ("c1", "c2", "c3"):
        answers.remember(cycle, Answered(decision(cycle), hold))
    assert len(answers) == 2
    assert answers.get("c1") is None
    entry = answers.get("c3")
    assert entry is not None and entry.decision.cycle_id == "c3"
    with pytest.raises(ValueError, match="at least 1"):
        RecentAnswers(capacity=0)
