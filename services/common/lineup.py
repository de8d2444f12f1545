"""The line-up of agents (``ARENA_AGENTS_FILE``, TOML): who races, on which model."""

from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.common.contracts import AgentId


class AgentSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: AgentId
    display_name: str
    provider: str = Field(
        description="anthropic, openai, deepseek, openai-compatible, baseline, replay"
    )
    model: str
    base_url: str | None = None
    api_key_env: str | None = None
    temperature: float = 0.2
    max_tokens: int = 2048
    timeout_seconds: float = 60
    price_input_per_mtok: Decimal = Decimal(0)
    price_output_per_mtok: Decimal = Decimal(0)
    enabled: bool = True
    seed: int | None = Field(default=None, description="Baselines: overrides ARENA_SEED.")
    json_schema: bool = Field(
        default=False, description="Ask for the JSON-schema response format (openai)."
    )
    max_retries: int = Field(default=2, ge=0, description="Retries on 429, 5xx, 529.")
    retry_backoff_seconds: float = Field(default=1.0, ge=0)
    reask_on_parse_error: bool = Field(
        default=True, description="Ask once more, with the error, when the answer is unusable."
    )
    circuit_failures: int = Field(default=5, ge=1, description="Failed cycles that open it.")
    circuit_reset_seconds: float = Field(default=300, gt=0)
    recordings: str | None = Field(
        default=None,
        description="Directory of recorded responses: read by provider replay, "
        "written by the other LLM providers.",
    )


class Lineup(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    agents: tuple[AgentSpec, ...]

    def get(self, agent_id: str) -> AgentSpec:
        for agent in self.agents:
            if agent.id == agent_id:
                return agent
        known = ", ".join(a.id for a in self.agents)
        raise KeyError(f"agent {agent_id!r} is not in the line-up (known: {known})")

    @property
    def active(self) -> tuple[AgentSpec, ...]:
        return tuple(a for a in self.agents if a.enabled)


class LineupError(ValueError):
    pass


def load_lineup(path: Path) -> Lineup:
    """Read and validate the line-up file; errors name the file and the bad field."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise LineupError(f"line-up file {path} does not exist (ARENA_AGENTS_FILE)") from exc
    except tomllib.TOMLDecodeError as exc:
        raise LineupError(f"line-up file {path} is not valid TOML: {exc}") from exc
    try:
        lineup = Lineup.model_validate(raw)
    except ValidationError as exc:
        raise LineupError(f"line-up file {path} is invalid: {exc}") from exc
    ids = [a.id for a in lineup.agents]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise LineupError(f"line-up file {path} repeats agent ids: {', '.join(duplicates)}")
    if not ids:
        raise LineupError(f"line-up file {path} lists no agent")
    return lineup
