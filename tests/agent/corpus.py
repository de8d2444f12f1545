"""The corpus of model outputs (``corpus/cases.toml``), loaded for tests and the benchmark."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).with_name("corpus") / "cases.toml"


@dataclass(frozen=True)
class Case:
    name: str
    output: str
    actions: tuple[dict[str, Any], ...] | None
    error: str | None
    reasoning: str | None
    thinking: str | None


def load_cases(path: Path = CORPUS) -> list[Case]:
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    return [
        Case(
            name=c["name"],
            output=c["output"],
            actions=tuple(c["actions"]) if "actions" in c else None,
            error=c.get("error"),
            reasoning=c.get("reasoning"),
            thinking=c.get("thinking"),
        )
        for c in raw["case"]
    ]
