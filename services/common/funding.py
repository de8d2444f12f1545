"""Funding times: perpetual futures settle funding every 8 hours, at 00:00, 08:00 and 16:00 UTC.

The market announces the next funding time with each snapshot; the ledger charges a
position at each funding time it was open through. Both take the schedule from here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

FUNDING_INTERVAL_HOURS = 8
FUNDING_INTERVAL = timedelta(hours=FUNDING_INTERVAL_HOURS)


def last_funding_time(at: datetime) -> datetime:
    """The latest funding time (00:00, 08:00 or 16:00 UTC) at or before ``at``."""
    utc = at.astimezone(UTC)
    hour = utc.hour - utc.hour % FUNDING_INTERVAL_HOURS
    return utc.replace(hour=hour, minute=0, second=0, microsecond=0)


def next_funding_time(now: datetime) -> datetime:
    """The next 00/08/16 UTC funding instant strictly after ``now``."""
    return last_funding_time(now) + FUNDING_INTERVAL


def funding_times(first: datetime, last: datetime) -> list[datetime]:
    """Every funding time from ``first`` to ``last``, both included, oldest first."""
    times: list[datetime] = []
    when = last_funding_time(last)
    while when >= first:
        times.append(when)
        when -= FUNDING_INTERVAL
    return times[::-1]
