"""Which cycles' snapshots the books have taken, so a portfolio asked for a cycle is the
one that cycle's agents must see.

The books apply the stream in order (see :mod:`intake`): once a cycle's snapshot is
booked, so is every tick before it and its own mark to market. An agent asks for its
portfolio as soon as the snapshot reaches it, which may be before the ledger got there;
answered at once, it could show a position a tick has just closed, and the same replay
would decide differently on a busy machine. A portfolio query naming its cycle therefore
waits for that cycle's snapshot to be booked.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Iterable

# Enough for every cycle an agent may still be deciding on.
KEPT_CYCLES = 64


class BookedCycles:
    def __init__(self, capacity: int = KEPT_CYCLES) -> None:
        self._capacity = capacity
        self._cycles: OrderedDict[str, None] = OrderedDict()
        self._waiting: dict[str, asyncio.Event] = {}

    def __contains__(self, cycle_id: object) -> bool:
        return cycle_id in self._cycles

    def booked(self, cycle_ids: Iterable[str]) -> None:
        """These cycles' snapshots are committed to the books."""
        for cycle_id in cycle_ids:
            self._cycles[cycle_id] = None
            self._cycles.move_to_end(cycle_id)
            waiting = self._waiting.pop(cycle_id, None)
            if waiting is not None:
                waiting.set()
        while len(self._cycles) > self._capacity:
            self._cycles.popitem(last=False)

    async def wait(self, cycle_id: str, timeout: float) -> bool:
        """True once ``cycle_id``'s snapshot is booked; False if not within ``timeout``."""
        if cycle_id in self._cycles:
            return True
        event = self._waiting.setdefault(cycle_id, asyncio.Event())
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            if not event.is_set():
                self._waiting.pop(cycle_id, None)
            return False
        return True
