"""How many cycles make a year: the annualisation of the season report's and the live
leaderboard's figures (a year of 365 days, around the clock, as crypto trades)."""

from __future__ import annotations

YEAR_SECONDS = 365 * 24 * 3600


def cycles_per_year(cycle_seconds: float) -> int:
    """Cycles of ``cycle_seconds`` in a year (105,120 of five minutes)."""
    return max(1, round(YEAR_SECONDS / cycle_seconds))


CYCLES_PER_YEAR_5M = cycles_per_year(300)
