"""Funding times: perpetual futures settle funding every 8 hours, at 00:00, 08:00 and 16:00 UTC.

The market announces the next funding time with each snapshot; the ledger charges a
position at each funding time it was open through. Both take the schedule from here.
"""

from __future__ import annotations

from datetime import datetime, timedelta

FUNDING_INTERVAL_HOURS = 8
FUNDING_HOURS = tuple(range(0, 24, FUNDING_INTERVAL_HOURS))


def next_funding_time(now: datetime) -> datetime:
    """The next 00/08/16 UTC funding instant strictly after ``now``."""
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    for hour in FUNDING_HOURS:
        candidate = day + timedelta(hours=hour)
        if candidate > now:
            return candidate
    return day + timedelta(days=1)
