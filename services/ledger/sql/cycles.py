"""``cycles`` and their ``market_data``, and what makes each delivery apply once:
``processed_messages``, ``consumer_positions``, ``applied_ticks``.

The ``PRUNE_*`` statements each delete one batch; ``$n``, the last, is the batch size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from asyncpg import Connection

from services.common.contracts import CycleStarted, MarketSnapshot
from services.ledger.chain import ChainLink
from services.ledger.sql import outbox

# ---------------------------------------------------------------- messages and ticks


async def claim_message(conn: Connection, msg_id: str, consumer: str) -> bool:
    """Record that ``msg_id`` is being applied; False when it already was."""
    return bool(await claim_messages(conn, [msg_id], consumer))


async def claim_messages(conn: Connection, msg_ids: Sequence[str], consumer: str) -> set[str]:
    """Record that ``msg_ids`` are being applied; returns those not seen before."""
    records = await conn.fetch(_CLAIM, list(msg_ids), consumer)
    return {r["msg_id"] for r in records}


_CLAIM = (
    "INSERT INTO processed_messages (msg_id, consumer) "
    "SELECT DISTINCT unnest($1::text[]), $2 ON CONFLICT DO NOTHING RETURNING msg_id"
)


def claiming(store: str) -> str:
    """One statement that claims the message ids ``$1`` for consumer ``$2`` and runs
    ``store``, an insert that keeps only the rows of claimed ids (``WHERE <id> IN (SELECT
    msg_id FROM claimed)``); it answers how many ids were new. Claim and rows commit or
    fail together, in one round trip."""
    return f"WITH claimed AS ({_CLAIM}), stored AS ({store}) SELECT count(*)::int FROM claimed"


async def consumer_position(conn: Connection, durable: str) -> int | None:
    """The last stream sequence ``durable`` applied, if it applied any."""
    value = await conn.fetchval(
        "SELECT stream_sequence FROM consumer_positions WHERE durable = $1", durable
    )
    return None if value is None else int(value)


_ADVANCE = (
    "INSERT INTO consumer_positions (durable, stream_sequence) VALUES ($2, $3) "
    "ON CONFLICT (durable) DO UPDATE SET stream_sequence = "
    "GREATEST(consumer_positions.stream_sequence, EXCLUDED.stream_sequence), "
    "updated_at = now()"
)


async def claim_and_advance(
    conn: Connection, msg_ids: Sequence[str], durable: str, stream_sequence: int
) -> set[str]:
    """:func:`claim_messages` for ``durable`` and its position in the stream moved to
    ``stream_sequence`` (never back), in one round trip; the ids not seen before."""
    records = await conn.fetch(
        f"WITH advanced AS ({_ADVANCE}) {_CLAIM}",
        list(msg_ids),
        durable,
        stream_sequence,
    )
    return {r["msg_id"] for r in records}


async def claim_ticks(conn: Connection, ticks: Sequence[tuple[str, datetime]]) -> set[str]:
    """Record that these ``(tick id, applied at)`` ticks are being applied; returns the ids
    not applied before."""
    records = await conn.fetch(
        "INSERT INTO applied_ticks (tick_id, applied_at) "
        "SELECT DISTINCT ON (i) i, a FROM unnest($1::text[], $2::timestamptz[]) AS u (i, a) "
        "ORDER BY i, a ON CONFLICT DO NOTHING RETURNING tick_id",
        [tick_id for tick_id, _ in ticks],
        [at for _, at in ticks],
    )
    return {r["tick_id"] for r in records}


PRUNE_PROCESSED = (
    "DELETE FROM processed_messages WHERE msg_id IN (SELECT msg_id FROM processed_messages "
    "WHERE processed_at < now() - $1::interval LIMIT $2)"
)
PRUNE_TICKS = (
    "DELETE FROM applied_ticks WHERE tick_id IN (SELECT tick_id FROM applied_ticks "
    "WHERE applied_at < $1 LIMIT $2)"
)


# ---------------------------------------------------------------- cycles


@dataclass(frozen=True)
class CycleRow:
    cycle_id: str
    sequence: int
    started_at: datetime
    decision_deadline: datetime
    expected_agents: tuple[str, ...]
    status: str
    data_time: bool = False

    # The status of a cycle the market never announced (no row): nothing trades in it.
    UNKNOWN = "unknown"

    @property
    def running(self) -> bool:
        return self.status == "running"

    @classmethod
    def unknown(cls, cycle_id: str) -> CycleRow:
        never = datetime.min.replace(tzinfo=UTC)
        return cls(cycle_id, 0, never, never, (), cls.UNKNOWN)


_CYCLE_FIELDS = tuple(f.name for f in fields(CycleRow))
_CYCLE_COLUMNS = ", ".join(_CYCLE_FIELDS)


def _cycle_row(values: dict[str, Any]) -> CycleRow:
    values["expected_agents"] = tuple(values["expected_agents"])
    return CycleRow(**values)


@dataclass(frozen=True)
class NewCycle:
    """A started cycle as the books store it, with the agents expected to decide and the
    wall-clock time it was stored at: a replay's cycle (data time) expires on the wall
    clock one decision window after it; any other at its deadline."""

    started: CycleStarted
    expected_agents: Sequence[str]
    wall_now: datetime

    def values(self) -> tuple[Any, ...]:
        started = self.started
        window = started.decision_deadline - started.started_at
        return (
            started.cycle_id,
            started.sequence,
            started.started_at,
            started.decision_deadline,
            list(self.expected_agents),
            started.data_time,
            self.wall_now + window if started.data_time else None,
        )


def _insert_cycle(first: int) -> str:
    """The insert of a :class:`NewCycle` whose values are parameters ``$first`` on."""
    values = ", ".join(f"${first + n}" for n in range(7))
    return (
        "INSERT INTO cycles (cycle_id, sequence, started_at, decision_deadline, expected_agents, "
        f"data_time, expires_at) VALUES ({values}) ON CONFLICT (cycle_id) DO NOTHING"
    )


async def insert_cycle(conn: Connection, cycle: NewCycle) -> None:
    await conn.execute(_insert_cycle(1), *cycle.values())


async def cycle(conn: Connection, cycle_id: str, *, for_update: bool = False) -> CycleRow | None:
    lock = " FOR UPDATE" if for_update else ""
    record = await conn.fetchrow(
        f"SELECT {_CYCLE_COLUMNS} FROM cycles WHERE cycle_id = $1{lock}", cycle_id
    )
    return None if record is None else _cycle_row(dict(record))


_COMPLETION_EVENT = f"event AS ({outbox.insert_statement(5)})"
_CLOSE = (
    "UPDATE cycles SET status = $2, completed_at = $3, duration_seconds = $4 WHERE cycle_id = $1"
)
_FINISH = f"WITH {_COMPLETION_EVENT} {_CLOSE}"
# The same, with decisions joining the chain ($9 ids, $10 positions, $11 previous hashes,
# $12 hashes) and the chain's head moved to the last of them ($13, $14).
_FINISH_LINKING = (
    f"WITH {_COMPLETION_EVENT}, "
    "head AS (UPDATE decision_chain_head SET seq = $13, hash = $14), "
    "linked AS (UPDATE decisions d SET seq = l.seq, prev_hash = l.prev_hash, hash = l.hash "
    "FROM unnest($9::text[], $10::bigint[], $11::text[], $12::text[]) "
    f"AS l (decision_id, seq, prev_hash, hash) WHERE d.decision_id = l.decision_id) {_CLOSE}"
)


async def finish_cycle(
    conn: Connection,
    cycle_id: str,
    status: str,
    now: datetime,
    duration_seconds: float,
    *,
    event: outbox.OutboxRow,
    links: Sequence[tuple[str, ChainLink]] = (),
) -> None:
    """Close the cycle and write its completion ``event`` to the outbox, and the chain's
    ``links`` (decision id, link; in chain order) with the head moved to the last, in one
    statement."""
    values = (cycle_id, status, now, duration_seconds, *event.values())
    if not links:
        await conn.execute(_FINISH, *values)
        return
    ids, chained = zip(*links, strict=True)
    await conn.execute(
        _FINISH_LINKING,
        *values,
        list(ids),
        [link.seq for link in chained],
        [link.prev_hash for link in chained],
        [link.hash for link in chained],
        chained[-1].seq,
        chained[-1].hash,
    )


async def overdue_cycles(conn: Connection, deadline_before: datetime) -> list[str]:
    records = await conn.fetch(
        "SELECT cycle_id FROM cycles WHERE status = 'running' "
        "AND COALESCE(expires_at, decision_deadline) < $1 ORDER BY sequence",
        deadline_before,
    )
    return [r["cycle_id"] for r in records]


# ---------------------------------------------------------------- market data


_SNAPSHOT_FRESH = (
    "fresh AS (SELECT NOT EXISTS (SELECT 1 FROM market_data WHERE cycle_id = $10) AS "
    "fresh), stored AS (INSERT INTO market_data (symbol, price, mark_price, volume_24h, "
    "price_change_24h, high_24h, low_24h, funding_rate, data_timestamp, cycle_id) "
    "SELECT s.*, $9::timestamptz, $10::text FROM unnest($1::text[], $2::numeric[], "
    "$3::numeric[], $4::numeric[], $5::numeric[], $6::numeric[], $7::numeric[], "
    "$8::numeric[]) AS s (symbol, price, mark_price, volume_24h, price_change_24h, high_24h, "
    "low_24h, funding_rate) WHERE (SELECT fresh FROM fresh) "
    "ON CONFLICT (cycle_id, symbol) DO NOTHING) SELECT fresh FROM fresh"
)
_STORE_SNAPSHOT = f"WITH {_SNAPSHOT_FRESH}"
# The same, with its cycle's start stored first (parameters $11 on).
_STORE_CYCLE_AND_SNAPSHOT = f"WITH started AS ({_insert_cycle(11)}), {_SNAPSHOT_FRESH}"


async def store_snapshot(
    conn: Connection, snapshot: MarketSnapshot, cycle: NewCycle | None = None
) -> bool:
    """Store the snapshot's prices, one row a symbol, unless its cycle has a snapshot
    stored already (a copy): True when stored now. With its ``cycle``, the cycle's start
    too, in the same statement (a replay's lot brings them together)."""
    rows = snapshot.symbols
    stored = await conn.fetchval(
        _STORE_SNAPSHOT if cycle is None else _STORE_CYCLE_AND_SNAPSHOT,
        [s.symbol for s in rows],
        [s.last_price for s in rows],
        [s.mark_price for s in rows],
        [s.volume_24h for s in rows],
        [s.price_change_pct_24h for s in rows],
        [s.high_24h for s in rows],
        [s.low_24h for s in rows],
        [s.funding_rate for s in rows],
        snapshot.taken_at,
        snapshot.cycle_id,
        *(() if cycle is None else cycle.values()),
    )
    return bool(stored)


async def snapshot_stored(conn: Connection, cycle_id: str) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM market_data WHERE cycle_id = $1)", cycle_id
        )
    )


def cycle_and_prices_columns(cycle_id: str) -> str:
    """Select-list items reading the cycle ``cycle_id`` names (an SQL expression), locked,
    and its snapshot's prices; :func:`cycle_and_prices_of` reads them."""
    return (
        f"(SELECT ROW({_CYCLE_COLUMNS}) FROM cycles WHERE cycle_id = {cycle_id} FOR UPDATE) "
        "AS cycle_row, "
        f"ARRAY(SELECT symbol FROM market_data m WHERE m.cycle_id = {cycle_id} "
        "ORDER BY symbol) AS symbols, "
        f"ARRAY(SELECT price FROM market_data m WHERE m.cycle_id = {cycle_id} "
        "ORDER BY symbol) AS prices"
    )


def cycle_and_prices_of(values: dict[str, Any]) -> tuple[CycleRow | None, dict[str, Decimal]]:
    """The cycle (None if the market never announced it) and its snapshot's price per
    symbol (empty until the snapshot is stored), popped from ``values``."""
    row = values.pop("cycle_row")
    prices = dict(zip(values.pop("symbols"), values.pop("prices"), strict=True))
    if row is None:
        return None, prices
    return _cycle_row(dict(zip(_CYCLE_FIELDS, row, strict=True))), prices


async def latest_funding_rates(conn: Connection, symbols: Sequence[str]) -> dict[str, Decimal]:
    """The funding rate of each symbol's most recent snapshot row."""
    records = await conn.fetch(
        "SELECT DISTINCT ON (symbol) symbol, funding_rate FROM market_data "
        "WHERE symbol = ANY($1::text[]) AND funding_rate IS NOT NULL "
        "ORDER BY symbol, data_timestamp DESC",
        list(symbols),
    )
    return {r["symbol"]: r["funding_rate"] for r in records}


PRUNE_MARKET_DATA = """
DELETE FROM market_data WHERE id IN (
    SELECT m.id FROM market_data m
    WHERE m.data_timestamp < $1
      AND m.stored_at < now() - $2::interval
      AND m.data_timestamp < (SELECT max(n.data_timestamp) FROM market_data n
                              WHERE n.symbol = m.symbol)
    LIMIT $3)
"""
