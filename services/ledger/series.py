"""The equity curve as a chart draws it: at most ``points`` points per agent, found in SQL.

An agent with at most ``points`` snapshots in the window gets every one of them. An agent
with more gets the window (its start to the newest snapshot of the agents asked about)
cut into ``points`` equal spans, and the last snapshot of each span: one index probe per
span, so the work is bounded by ``points``, not by how long the history is. The spans are
the same for every agent, so their points line up on the chart's time axis.

:func:`equity_json` has Postgres write the whole answer as JSON, byte for byte what the
contracts' models would write (see migration 0009's ``arena_json_*``), so no Python
object is built per point: ``points`` (:class:`EquitySeries`) or ``columns``
(:class:`EquityColumns`, per agent its times and equities as two lists).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

# Before any snapshot: "no since" without an ``IS NULL OR`` a generic plan cannot index.
BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)
_TICK = timedelta(microseconds=1)  # timestamptz's resolution

COLUMNS = "llm_id, at, id, equity, balance, margin_used, unrealized_pnl, total_fees, total_funding"

_SIZES = """
SELECT a.llm_id,
       (SELECT count(*) FROM (SELECT 1 FROM equity_snapshots e
                              WHERE e.llm_id = a.llm_id AND e.at >= $2 LIMIT $3 + 1) s) AS n,
       (SELECT min(e.at) FROM equity_snapshots e WHERE e.llm_id = a.llm_id AND e.at >= $2) AS lo,
       (SELECT max(e.at) FROM equity_snapshots e WHERE e.llm_id = a.llm_id AND e.at >= $2) AS hi
FROM unnest($1::text[]) AS a (llm_id)
"""

_SERIES = f"""
SELECT {COLUMNS} FROM equity_snapshots
WHERE llm_id = ANY($1::text[]) AND at >= $2
UNION ALL
SELECT p.* FROM unnest($3::text[]) AS a (llm_id)
CROSS JOIN unnest($4::timestamptz[], $5::timestamptz[]) AS b (lo, hi)
CROSS JOIN LATERAL (
    SELECT {COLUMNS} FROM equity_snapshots e
    WHERE e.llm_id = a.llm_id AND e.at > b.lo AND e.at <= b.hi AND e.at >= $2
    ORDER BY e.at DESC, e.id DESC LIMIT 1
) p
ORDER BY at DESC, id DESC
LIMIT $6
"""


_POINT = """'{"schema_version":1,"agent_id":"' || llm_id
    || '","at":"' || arena_json_time(at)
    || '","equity":"' || arena_json_decimal(equity)
    || '","balance":"' || arena_json_decimal(balance)
    || '","margin_used":"' || arena_json_decimal(margin_used)
    || '","unrealized_pnl":"' || arena_json_decimal(unrealized_pnl)
    || '","total_fees":"' || arena_json_decimal(total_fees)
    || '","total_funding":"' || arena_json_decimal(total_funding) || '"}'"""

_AS_POINTS = f"""
WITH picked AS ({_SERIES})
SELECT '{{"schema_version":1,"points":['
    || coalesce(string_agg({_POINT}, ',' ORDER BY at, id), '') || ']}}'
FROM picked
"""

# Each agent's entry of an EquityColumns, by agent id, comma-separated (no envelope).
_COLUMN_ENTRIES = f"""
WITH picked AS ({_SERIES}),
per_agent AS (
    SELECT llm_id,
           string_agg('"' || arena_json_time(at) || '"', ',' ORDER BY at, id) AS ats,
           string_agg('"' || arena_json_decimal(equity) || '"', ',' ORDER BY at, id) AS values
    FROM picked GROUP BY llm_id
)
SELECT coalesce(string_agg('{{"schema_version":1,"agent_id":"' || llm_id || '","at":['
    || ats || '],"equity":[' || values || ']}}', ',' ORDER BY llm_id COLLATE "C"), '')
FROM per_agent
"""
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
    sizes = await conn.fetch(_SIZES, list(agent_ids), start, points)
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
    return list(await conn.fetch(_SERIES, *found.arguments()))


async def points_json(conn: asyncpg.Connection, found: Plan) -> bytes:
    """The points of ``found``, oldest first, as an :class:`EquitySeries`' JSON."""
    text: str = await conn.fetchval(_AS_POINTS, *found.arguments())
    return text.encode()


async def column_entries(
    conn: asyncpg.Connection, found: Plan, agents: Collection[str] | None = None
) -> bytes:
    """The entries of an :class:`EquityColumns` for ``agents`` of ``found`` (all when None).

    The newest ``limit`` are kept among the agents read together: entries of agents read
    apart join into one answer only when ``found.most`` is within the limit."""
    text: str = await conn.fetchval(_COLUMN_ENTRIES, *found.arguments(agents))
    return text.encode()
