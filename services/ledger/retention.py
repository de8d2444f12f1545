"""Retention: the ledger prunes its bookkeeping and thins old equity snapshots.

Every ``interval`` a pass deletes, each statement at most ``batch_size`` rows (so none
holds its locks for long), counting rows per table in ``arena_ledger_retention_removed``:

- ``processed_messages`` and ``applied_ticks`` older than the dedup horizon. They exist to
  recognise a message delivered again, so an id may go only once no copy of its message can
  reach the ledger. JetStream keeps a message at most ``max_age`` after it was published,
  which is before the ledger processed it. A copy can also come back through the dead
  letters: another consumer may dead-letter the message while it is in the stream (up to
  ``max_age`` after publishing), the dead-letter stream keeps it ``dlq_max_age``, and a
  re-drive publishes it again under its original id, to be delivered within ``max_age``.
  So the horizon is ``2 * max_age + dlq_max_age`` (7 + 30 + 7 days by default) plus a
  margin for clocks that disagree (Postgres stamps ``processed_at``, NATS ages the streams)
  and a message handled as it expired. Size limits on the streams only drop messages
  sooner. The limits are the settings' (``ARENA_STREAM_MAX_AGE_SECONDS``,
  ``ARENA_DLQ_MAX_AGE_SECONDS``): streams set up with longer ones need the settings to say so.
- sent ``outbox`` rows once published longer ago than their horizon; unsent and set-aside
  rows never (the relay still needs the first, an operator the second).
- ``market_data`` rows older than their horizon in market time, but never a symbol's
  newest row (its funding rate is the one charged) nor one stored (wall time) within the
  dedup horizon: a snapshot's rows are how a copy of it under another message id is
  recognised, and how a late verdict of its cycle finds its prices.
- ``equity_snapshots`` outside the recent window, thinned bucket by bucket as
  ``services.ledger.thinning`` says (cycle snapshots and the max drawdown are kept exact).

Market time (``symbol_marks``: the newest mark the ledger applied) is the reference for
market data and snapshots, never later than the clock: a replay of last year keeps its own
last week whole, and a paused arena keeps the days before the pause.

A pass that fails (Postgres down, a statement timing out) is logged and counted in
``arena_ledger_retention_failures``; what it deleted stays deleted and the next pass goes
on from there. Pruning never stops the service.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg

from services.common.clock import Clock
from services.common.settings import Settings
from services.common.streams import StreamLimits
from services.ledger import curve_store, sql
from services.ledger.database import acquire
from services.ledger.metrics import LedgerMetrics
from services.ledger.thinning import Snapshot, bucket_start, to_drop

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetentionPolicy:
    """What to keep; None for a horizon means keep forever (for ``interval``: never prune)."""

    interval: timedelta | None = timedelta(minutes=10)
    batch_size: int = 5000
    dedup: timedelta = field(
        default_factory=lambda: dedup_horizon(StreamLimits(), timedelta(hours=24))
    )
    outbox: timedelta | None = timedelta(hours=24)
    market_data: timedelta | None = None
    equity_full: timedelta | None = timedelta(days=7)
    equity_bucket: timedelta = timedelta(hours=1)

    @classmethod
    def off(cls) -> RetentionPolicy:
        return cls(interval=None)

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPolicy:
        return cls(
            interval=_or_none(timedelta(minutes=settings.retention_interval_minutes)),
            batch_size=settings.retention_batch_size,
            dedup=dedup_horizon(
                StreamLimits.from_settings(settings),
                timedelta(hours=settings.retention_dedup_margin_hours),
            ),
            outbox=_or_none(timedelta(hours=settings.retention_outbox_hours)),
            market_data=_or_none(timedelta(days=settings.retention_market_data_days)),
            equity_full=_or_none(timedelta(days=settings.retention_equity_full_days)),
            equity_bucket=timedelta(minutes=settings.retention_equity_bucket_minutes),
        )


def dedup_horizon(limits: StreamLimits, margin: timedelta) -> timedelta:
    """How long after processing a message's id must be kept (see the module's docstring)."""
    stream = timedelta(seconds=limits.max_age_seconds)
    return 2 * stream + timedelta(seconds=limits.dlq_max_age_seconds) + margin


def _or_none(horizon: timedelta) -> timedelta | None:
    return horizon if horizon > timedelta(0) else None


def _deleted(status: str) -> int:
    """Rows a DELETE removed, from its command tag (``DELETE <n>``)."""
    return int(status.rsplit(" ", 1)[-1])


class Retention:
    """The periodic pass, on the ledger's pool; each statement on a connection of its own."""

    def __init__(
        self, pool: asyncpg.Pool, clock: Clock, metrics: LedgerMetrics, policy: RetentionPolicy
    ) -> None:
        self._pool = pool
        self._clock = clock
        self._metrics = metrics
        self._policy = policy

    async def run(self) -> None:
        interval = self._policy.interval
        if interval is None:
            return
        while True:
            await asyncio.sleep(interval.total_seconds())
            try:
                await self.prune_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._metrics.retention_failures.inc()
                log.warning("retention pass failed, next one in %s: %r", interval, exc)

    async def prune_once(self) -> dict[str, int]:
        """One pass over every table; rows deleted per table. Raises when a statement fails."""
        p = self._policy
        now = self._clock.now()
        removed = {
            "processed_messages": await self._drain(
                "processed_messages", sql.cycles.PRUNE_PROCESSED, p.dedup
            ),
            "applied_ticks": await self._drain(
                "applied_ticks", sql.cycles.PRUNE_TICKS, now - p.dedup
            ),
        }
        if p.outbox is not None:
            removed["outbox"] = await self._drain("outbox", sql.outbox.PRUNE, now - p.outbox)
        market_now = await self._market_now(now)
        if market_now is not None and p.market_data is not None:
            removed["market_data"] = await self._drain(
                "market_data", sql.cycles.PRUNE_MARKET_DATA, market_now - p.market_data, p.dedup
            )
        if market_now is not None and p.equity_full is not None:
            cutoff = bucket_start(market_now - p.equity_full, p.equity_bucket)
            removed["equity_snapshots"] = await self._thin_equity(cutoff)
        if any(removed.values()):
            log.info(
                "retention removed %s",
                ", ".join(f"{n} from {table}" for table, n in removed.items() if n),
                extra={"removed": removed},
            )
        return removed

    async def _drain(self, table: str, statement: str, *args: object) -> int:
        """Run a one-batch DELETE until a batch comes back short."""
        total = 0
        while True:
            async with acquire(self._pool) as conn:
                n = _deleted(await conn.execute(statement, *args, self._policy.batch_size))
            total += n
            self._metrics.retention_removed.labels(table).inc(n)
            if n < self._policy.batch_size:
                return total

    async def _market_now(self, now: datetime) -> datetime | None:
        """The newest applied mark, at most ``now``; None before the first mark."""
        async with acquire(self._pool) as conn:
            latest = await sql.positions.latest_mark(conn)
        return None if latest is None else min(latest, now)

    # ------------------------------------------------------------ equity snapshots

    async def _thin_equity(self, cutoff: datetime) -> int:
        async with acquire(self._pool) as conn:
            agents = await sql.accounts.agent_ids(conn)
        total = 0
        for agent in sorted(agents):
            total += await self._thin_agent(agent, cutoff)
        return total

    async def _thin_agent(self, agent: str, cutoff: datetime) -> int:
        """Thin ``agent``'s buckets from where the last pass stopped up to ``cutoff``."""
        width = self._policy.equity_bucket
        async with acquire(self._pool) as conn:
            start = await sql.equity.thinned_from(conn, agent)
        if start is None:
            return 0
        start = bucket_start(start, width)
        total = 0
        while start < cutoff:
            rows, end = await self._chunk(agent, start, cutoff)
            dropped = to_drop(rows, width)
            async with acquire(self._pool) as conn, conn.transaction():
                await sql.equity.delete_snapshots(conn, dropped)
                if dropped:
                    await curve_store.mark_stale(conn, agent, start, end)
                await sql.equity.save_thinned_until(conn, agent, end)
            self._metrics.retention_removed.labels("equity_snapshots").inc(len(dropped))
            total += len(dropped)
            start = end
        return total

    async def _chunk(
        self, agent: str, start: datetime, cutoff: datetime
    ) -> tuple[list[Snapshot], datetime]:
        """Whole buckets of ``agent`` from ``start``, about a batch of rows, and where they end."""
        width = self._policy.equity_bucket
        limit = self._policy.batch_size
        rows = await self._snapshots(agent, start, cutoff, limit + 1)
        if len(rows) <= limit:
            return rows, cutoff
        # The batch ends inside a bucket: leave that bucket whole to the next chunk.
        end = bucket_start(rows[limit].at, width)
        if end > start:
            return [r for r in rows if r.at < end], end
        # One bucket holds more than a batch: it is still thinned whole.
        end = start + width
        return await self._snapshots(agent, start, end, None), end

    async def _snapshots(
        self, agent: str, start: datetime, end: datetime, limit: int | None
    ) -> list[Snapshot]:
        async with acquire(self._pool) as conn:
            records = await sql.equity.snapshots_between(conn, agent, start, end, limit)
        return [Snapshot(r["id"], r["at"], r["source"], r["equity"]) for r in records]
