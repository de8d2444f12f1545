"""The equity curve as a chart draws it: at most ``points`` points per agent, found in SQL.

An agent with at most ``points`` snapshots in the window gets every one of them. An agent
with more gets the window (its start to the newest snapshot of the agents asked about)
cut into ``points`` equal spans, and the last snapshot of each span: one index probe per
span, so the work is bounded by ``points``, not by how long the history is. The spans are
the same for every agent, so their points line up on the chart's time axis.

:func:`points_json` and :func:`column_entries` have Postgres write the whole answer as
JSON, byte for byte what the contracts' models would write (see
:mod:`services.ledger.sql.equity`), so no Python object is built per point: ``points``
(:class:`EquitySeries`) or ``columns`` (:class:`EquityColumns`, per agent its times and
equities as two lists).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from services.ledger import sql

# Before any snapshot: "no since" without an ``IS NULL OR`` a generic plan cannot index.
BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)
_TICK = timedelta(microseconds=1)  # timestamptz's resolution

COLUMNS_OPENING = b'{"schema_version":1,"agents":['
CLOSING = b"]}"


def spans(lo: datetime, hi: datetime, points: int) -> tuple[list[datetime], list[datetime]]:
    """``points`` consecutive spans covering [lo, hi]: (exclusive starts, inclusive ends).

    Span k is (starts[k], ends[k]]; the first starts just before ``lo`` so ``lo`` is in
    it, the last ends at ``hi``. Computed in whole microseconds, so the ends are exact.
    """
    if points < 1:
        raise ValueError("points must be at least 1")
    width = hi - lo
    ends = [lo + width * k // points for k in range(1, points + 1)]
    ends[-1] = hi
    starts = [lo - _TICK, *ends[:-1]]
    return starts, ends


@dataclass(frozen=True)
class Plan:
    """What to read for an answer: agents whole or cut into the common spans."""

    start: datetime
    whole: tuple[str, ...]
    thinned: tuple[str, ...]
    starts: list[datetime]
    ends: list[datetime]
    limit: int
    most: int  # an upper bound on the points of all agents

    @property
    def agents(self) -> tuple[str, ...]:
        return self.whole + self.thinned

    def arguments(self, agents: Collection[str] | None = None) -> tuple[object, ...]:
        """The statements' arguments, for ``agents`` only when given."""
        whole = [a for a in self.whole if agents is None or a in agents]
        thinned = [a for a in self.thinned if agents is None or a in agents]
        return (whole, self.start, thinned, self.starts, self.ends, self.limit)


async def plan(
    conn: asyncpg.Connection,
    agent_ids: Sequence[str],
    since: datetime | None,
    points: int,
    limit: int,
) -> Plan:
    start = since or BEGINNING
    sizes = await sql.equity.sizes(conn, agent_ids, start, points)
    whole = tuple(r["llm_id"] for r in sizes if r["n"] <= points)
    thinned = [r for r in sizes if r["n"] > points]
    starts: list[datetime] = []
    ends: list[datetime] = []
    if thinned:
        lo = min(r["lo"] for r in sizes if r["lo"] is not None)
        hi = max(r["hi"] for r in sizes if r["hi"] is not None)
        starts, ends = spans(lo, hi, points)
    most = sum(min(int(r["n"]), points) for r in sizes)
    return Plan(start, whole, tuple(r["llm_id"] for r in thinned), starts, ends, limit, most)


async def equity_series(
    conn: asyncpg.Connection,
    agent_ids: Sequence[str],
    since: datetime | None,
    points: int,
    limit: int,
) -> list[asyncpg.Record]:
    """The points of ``agent_ids`` from ``since``, newest first, at most ``limit``."""
    found = await plan(conn, agent_ids, since, points, limit)
    return await sql.equity.series(conn, found.arguments())


async def points_json(conn: asyncpg.Connection, found: Plan) -> bytes:
    """The points of ``found``, oldest first, as an :class:`EquitySeries`' JSON."""
    return (await sql.equity.points_json(conn, found.arguments())).encode()


async def column_entries(
    conn: asyncpg.Connection, found: Plan, agents: Collection[str] | None = None
) -> bytes:
    """The entries of an :class:`EquityColumns` for ``agents`` of ``found`` (all when None).

    The newest ``limit`` are kept among the agents read together: entries of agents read
    apart join into one answer only when ``found.most`` is within the limit."""
    return (await sql.equity.column_entries_json(conn, found.arguments(agents))).encode()
