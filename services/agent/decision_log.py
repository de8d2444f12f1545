"""The decision audit trail: one JSON line per published decision in ``llm_decisions.log``."""

from __future__ import annotations

import json
from pathlib import Path

from services.common.contracts import Decision

FILE_NAME = "llm_decisions.log"


def decision_line(decision: Decision) -> str:
    """What the audit trail keeps of a decision: enough to read it without the database."""
    record = {
        "decision_id": decision.decision_id,
        "agent": decision.agent_id,
        "cycle": decision.cycle_id,
        "decided_at": decision.decided_at.isoformat(),
        "model": decision.model,
        "actions": [a.model_dump(mode="json", exclude_none=True) for a in decision.actions],
        "reasoning": decision.reasoning,
        "error": decision.error,
        "prompt_sha256": decision.prompt_sha256,
    }
    return json.dumps(record, ensure_ascii=False)


class DecisionLog:
    """Appends to one file; several agent processes may share it (each line is one write)."""

    def __init__(self, path: Path) -> None:
        self._path = path

    @classmethod
    def in_dir(cls, log_dir: Path) -> DecisionLog:
        log_dir.mkdir(parents=True, exist_ok=True)
        return cls(log_dir / FILE_NAME)

    @property
    def path(self) -> Path:
        return self._path

    def append(self, decision: Decision) -> None:
        with self._path.open("a", encoding="utf-8") as file:
            file.write(decision_line(decision) + "\n")
