"""The scheduler's arithmetic (pure): its settings, the slot grid, ids.

A cycle starts on a slot of the grid ``first start + k * cycle_seconds``. Missed slots
coalesce: when the scheduler gets free after several slots passed, only the latest runs,
and only if it is at most ``misfire_grace`` late; every slot not run is skipped.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.common.settings import Settings

MISFIRE_GRACE = timedelta(seconds=30)
MAX_WAIT_SECONDS = 1.0


@dataclass(frozen=True)
class SchedulerConfig:
    cycle_seconds: float
    decision_window: timedelta
    completion_grace: timedelta
    tick_seconds: float
    symbols: tuple[str, ...]
    agents: tuple[str, ...]
    misfire_grace: timedelta = MISFIRE_GRACE
    # Longest single wait: waits are re-evaluated at least this often, so a clock that
    # jumps (suspend, NTP, a manual clock in tests) is noticed.
    max_wait_seconds: float = MAX_WAIT_SECONDS

    @classmethod
    def from_settings(cls, settings: Settings, agents: tuple[str, ...]) -> SchedulerConfig:
        # The ledger completes a cycle at its deadline at the latest; the grace only
        # covers a slow or restarting ledger: half the time left before the next slot,
        # at least 1 s (for a message to arrive), at most 30 s.
        left = settings.cycle_seconds - settings.decision_window.total_seconds()
        grace = min(max(left / 2, 1.0), 30.0)
        return cls(
            cycle_seconds=settings.cycle_seconds,
            decision_window=settings.decision_window,
            completion_grace=timedelta(seconds=grace),
            tick_seconds=settings.tick_seconds,
            symbols=settings.symbols,
            agents=agents,
        )


@dataclass(frozen=True)
class RunPlan:
    run_now: bool
    next_due: datetime
    skipped: int


def plan_run(due: datetime, now: datetime, period: float, misfire_grace: timedelta) -> RunPlan:
    """What to do at ``now`` with a slot ``due`` that is not in the future (pure).

    Every slot up to ``now`` collapses into the latest one, which runs if it is at most
    ``misfire_grace`` late; the others, and the latest too when it is later, are skipped.
    """
    late = (now - due).total_seconds()
    if late < 0:
        return RunPlan(run_now=False, next_due=due, skipped=0)
    passed = math.floor(late / period)
    latest = due + timedelta(seconds=passed * period)
    next_due = latest + timedelta(seconds=period)
    if now - latest <= misfire_grace:
        return RunPlan(run_now=True, next_due=next_due, skipped=passed)
    return RunPlan(run_now=False, next_due=next_due, skipped=passed + 1)


def next_slot(due: datetime, now: datetime, period: float) -> datetime:
    """The first slot of the grid through ``due`` that is not before ``now``."""
    if due >= now:
        return due
    steps = math.ceil((now - due).total_seconds() / period)
    return due + timedelta(seconds=steps * period)


def new_id(now: datetime, *, precise: bool = False, suffix: str | None = None) -> str:
    """A time-ordered id, unique across restarts thanks to its random suffix; a replay
    gives its own (``suffix``), so that the same data gives the same ids."""
    stamp = now.strftime("%Y%m%dT%H%M%S%fZ" if precise else "%Y%m%dT%H%M%SZ")
    return f"{stamp}-{suffix or secrets.token_hex(3)}"


def bars_until(now: datetime, due: datetime, step: timedelta, remaining: int) -> int:
    """How many bars of ``step`` a replay plays from ``now`` up to ``due``: at least one
    (taking a bar the data does not have reports its end), at most the ``remaining`` ones."""
    wanted = math.ceil((due - now) / step)
    return max(1, min(wanted, remaining))
