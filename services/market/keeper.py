"""Saving the market's state with every change, and taking it up again at start-up.

Restarts (state in NATS key-value): paused if it was; the cycle sequence, slot grid,
statistics and source continue; a running cycle's completion (consumed durably) or
deadline plus grace is awaited first. NATS down at a cycle start: see
:mod:`services.market.cycle`; a live tick that cannot be published is skipped and counted,
a replayed one is retried until published.

At most the steps published last before the process ended, before they were recorded, are
taken twice across a restart: a live tick, or a replay's bars up to a cycle with that
cycle's start and snapshot (published in one lot, then recorded). The source is
deterministic, so they are the same steps and the same cycle under the same ids (see
:mod:`services.market.ticks`), and JetStream's duplicate window or the ledger's record
of the messages it applied drops the copies.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from services.market.source import MarketSource, PositionMismatch, ResumableSource
from services.market.state import MarketState, SavedSource, describe
from services.market.state_store import StateStore
from services.market.ticks import TickPublisher

log = logging.getLogger(__name__)


class StateKeeper:
    def __init__(
        self,
        *,
        store: StateStore,
        state: Callable[[], MarketState],
        source: MarketSource,
        resumable: ResumableSource | None,
        ticks: TickPublisher,
    ) -> None:
        self._store = store
        self._state = state
        self._source = source
        self._resumable = resumable
        self._ticks = ticks
        self._lock = asyncio.Lock()
        self._checkpoint_key: int | None = None

    async def load(self) -> tuple[MarketState | None, bool]:
        """The saved state, and whether the source continues from it (it is then resumed)."""
        saved = await self._store.load()
        if saved is None:
            log.info("no saved market state: the market starts afresh")
            return None, False
        log.info("saved market state: %s", describe(saved))
        return saved, await self._resume_source(saved.source)

    async def _resume_source(self, saved: SavedSource) -> bool:
        if saved.name != self._source.name:
            log.warning(
                "the saved state is of the %s source, this market runs %s: it starts afresh",
                saved.name,
                self._source.name,
            )
            return False
        if self._resumable is not None:
            try:
                if saved.position is None:
                    raise PositionMismatch("no position was saved")
                checkpoint = await self._store.load_checkpoint()
                await self._resumable.resume(saved.position, checkpoint)
            except PositionMismatch as exc:
                log.warning("the %s source starts afresh: %s", saved.name, exc)
                return False
        self._ticks.restore(saved)
        return True

    async def save_strictly(self) -> None:
        """Save the state as it is now; raises when NATS does not take it."""
        # One writer at a time, each writing the state as it is then: the last write wins.
        async with self._lock:
            await self._store.save(self._state())
            checkpoint = self._resumable.checkpoint() if self._resumable else None
            if checkpoint is not None and checkpoint.key != self._checkpoint_key:
                await self._store.save_checkpoint(checkpoint.data)
                self._checkpoint_key = checkpoint.key

    async def save(self) -> None:
        """Save the state; a failure is logged, and the next save records the newer state."""
        try:
            await self.save_strictly()
        except Exception as exc:
            log.warning("the market state could not be saved, the next save will: %r", exc)
