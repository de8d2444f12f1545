"""What the market keeps across restarts (pure): one JSON document, and its statistics.

Saved in the JetStream key-value bucket ``subjects.MARKET_STATE_BUCKET``: whether the
scheduler is paused, the last cycle sequence used, the cycle running (with its deadlines
on the wall clock, since a restarted process has a new monotonic clock), the next slot,
the job statistics, and where the source is.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.market.source import JsonObject


class _Saved(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SavedCycle(_Saved):
    cycle_id: str
    sequence: int = Field(ge=1)
    started_at: AwareDatetime
    decision_deadline: AwareDatetime
    # No completion by then: the cycle failed (its decision deadline plus the grace).
    fail_at: AwareDatetime


class SavedStats(_Saved):
    started: int = Field(default=0, ge=0)
    completed: int = Field(default=0, ge=0)
    failed: int = Field(default=0, ge=0)
    skipped: int = Field(default=0, ge=0)
    last_duration: float | None = None
    total_duration: float = 0.0


class SavedSource(_Saved):
    name: str
    # Replayable sources name their ticks "<run>-<ticks>": a tick published again after
    # a restart keeps its id, so JetStream and the ledger drop the copy.
    run: str
    ticks: int = Field(ge=0)
    position: JsonObject | None = None


class MarketState(_Saved):
    version: Literal[1] = 1
    saved_at: AwareDatetime
    paused: bool = False
    sequence: int = Field(default=0, ge=0)
    current: SavedCycle | None = None
    # On the wall clock, or on the data's clock with a paced source; None: not planned
    # yet, or (paced) the data is exhausted.
    next_run_at: AwareDatetime | None = None
    stats: SavedStats = SavedStats()
    source: SavedSource


@dataclass
class CycleStats:
    """The scheduler's job statistics, kept across restarts."""

    started: int = 0
    completed: int = 0
    failed: int = 0
    skipped: int = 0
    last_duration: float | None = None
    total_duration: float = 0.0

    @classmethod
    def restored(cls, saved: SavedStats) -> CycleStats:
        return cls(**saved.model_dump())

    def saved(self) -> SavedStats:
        return SavedStats(**asdict(self))

    def complete(self, duration: float) -> None:
        self.completed += 1
        self.last_duration = duration
        self.total_duration += duration

    @property
    def mean_duration(self) -> float | None:
        return self.total_duration / self.completed if self.completed else None


def describe(state: MarketState) -> str:
    """One line for the log on start-up."""
    current = state.current
    running = f"cycle {current.cycle_id} running" if current else "no cycle running"
    planned = state.next_run_at.isoformat() if state.next_run_at else "none"
    return (
        f"{'paused' if state.paused else 'running'}, last sequence {state.sequence}, "
        f"{running}, next slot {planned}, {state.source.name} after {state.source.ticks} "
        f"ticks, saved at {state.saved_at.isoformat()}"
    )
