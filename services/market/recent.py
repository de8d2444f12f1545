"""The full snapshots of the market's recent cycles, candles included.

The snapshot event leaves the candles out; a model's prompt asks for them by cycle id while
its cycle runs (one cycle at a time, so a few cover a late answer too). Kept in memory: a
restarted market no longer has them, and an agent then decides without recent closes.
"""

from __future__ import annotations

from collections import OrderedDict

from services.common.contracts import MarketSnapshot

KEPT = 8


class RecentSnapshots:
    def __init__(self, kept: int = KEPT) -> None:
        self._kept = kept
        self._by_cycle: OrderedDict[str, MarketSnapshot] = OrderedDict()
        self.latest: MarketSnapshot | None = None
        """The last cycle's snapshot that was announced (None before the first)."""

    def keep(self, snapshot: MarketSnapshot) -> None:
        """Hold ``snapshot`` before it is announced, so a question right after finds it."""
        self._by_cycle[snapshot.cycle_id] = snapshot
        while len(self._by_cycle) > self._kept:
            self._by_cycle.popitem(last=False)

    def of(self, cycle_id: str) -> MarketSnapshot | None:
        return self._by_cycle.get(cycle_id)
