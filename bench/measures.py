"""What every benchmark hands to ``make bench``'s table: named figures against targets.

A benchmark module exposes ``def measure(quick: bool = False) -> list[Measure]`` (it may
run its own event loop inside). Each figure is measured in that run, next to a reference
measured in the same run where a reference makes sense (a bare NATS request-reply, a bare
Postgres commit, a bare FastAPI endpoint), so the table reads as ratios and percentiles
rather than absolute times on an unknown machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Better(StrEnum):
    """Which way a figure improves, for the target check and the regression check."""

    LOWER = "lower"
    HIGHER = "higher"


@dataclass(frozen=True, slots=True)
class Measure:
    """One figure of one benchmark.

    ``name`` is stable across runs (the regression check matches on it); ``target`` is the
    limit the figure must meet (None: shown, not judged); ``reference`` is the same-run
    figure it is compared with, described by ``reference_name``.
    """

    group: str
    name: str
    value: float
    unit: str
    better: Better = Better.LOWER
    target: float | None = None
    reference: float | None = None
    reference_name: str = ""

    @property
    def meets_target(self) -> bool | None:
        if self.target is None:
            return None
        if self.better is Better.LOWER:
            return self.value <= self.target
        return self.value >= self.target

    @property
    def ratio(self) -> float | None:
        """The figure over its reference (how many times the bare operation it costs)."""
        if self.reference is None or self.reference == 0:
            return None
        return self.value / self.reference
