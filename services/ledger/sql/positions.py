"""``positions`` and what happens to them: ``trades`` (written with the opening or the
closing they record), ``funding_payments``, ``symbol_marks``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg
from asyncpg import Connection

from services.common.contracts import PositionSide, PositionStatus
from services.ledger.accounting import Closing, Opening
from services.ledger.sql import accounts, cycles
from services.ledger.sql.accounts import AccountRow
from services.ledger.sql.cycles import CycleRow


@dataclass(frozen=True)
class PositionRow:
    id: UUID
    agent_id: str
    symbol: str
    side: PositionSide
    status: PositionStatus
    entry_price: Decimal
    current_price: Decimal
    quantity: Decimal
    leverage: int
    margin: Decimal
    unrealized_pnl: Decimal
    liquidation_price: Decimal | None
    stop_loss: Decimal | None
    take_profit: Decimal | None
    opened_at: datetime
    closed_at: datetime | None
    cycle_id: str | None
    entry_fee: Decimal


COLUMN_NAMES = accounts.column_names(PositionRow)
COLUMNS = ", ".join(COLUMN_NAMES)


def _position(record: asyncpg.Record | dict[str, Any]) -> PositionRow:
    values = accounts.row_values(record)
    values["side"] = PositionSide(values["side"])
    values["status"] = PositionStatus(values["status"])
    return PositionRow(**values)


# ---------------------------------------------------------------- positions


async def open_positions(conn: Connection, agent_id: str | None = None) -> list[PositionRow]:
    records = await conn.fetch(
        f"SELECT {COLUMNS} FROM positions "
        "WHERE status = 'OPEN' AND ($1::text IS NULL OR llm_id = $1) "
        "ORDER BY llm_id, opened_at, symbol",
        agent_id,
    )
    return [_position(r) for r in records]


_ACCOUNT_COLUMNS = ", ".join(f"a.{name}" for name in accounts.column_names(AccountRow))


def _held_positions(agent: str) -> str:
    """The select-list item of the open positions of the agent ``agent`` names (an SQL
    expression), oldest first; :func:`_portfolio_of` reads it."""
    return (
        f"ARRAY(SELECT ROW({COLUMNS}) FROM positions p WHERE p.status = 'OPEN' "
        f"AND p.llm_id = {agent} ORDER BY opened_at, symbol) AS held_positions"
    )


def _portfolio_of(values: dict[str, Any]) -> tuple[AccountRow, list[PositionRow]]:
    rows = values.pop("held_positions")
    positions = [_position(dict(zip(COLUMN_NAMES, row, strict=True))) for row in rows]
    return accounts.account_row(values), positions


_PORTFOLIOS = (
    f"SELECT {_ACCOUNT_COLUMNS}, {_held_positions('a.llm_id')} FROM llm_accounts a "
    "WHERE a.llm_id = ANY($1::text[])"
)


async def portfolios(
    conn: Connection, agent_ids: Sequence[str]
) -> dict[str, tuple[AccountRow, list[PositionRow]]]:
    """Each account and its open positions, in one statement (one round trip, one
    snapshot); an agent without an account is left out."""
    records = await conn.fetch(_PORTFOLIOS, list(agent_ids))
    found = [_portfolio_of(dict(r)) for r in records]
    return {account.agent_id: (account, positions) for account, positions in found}


@dataclass(frozen=True)
class VerdictInputs:
    """What applying a verdict reads."""

    decided: bool  # its decision is already in the books
    cycle_decisions: int  # decisions of the cycle's expected agents in the books
    account: AccountRow
    positions: list[PositionRow]
    cycle: CycleRow | None  # None: the market never announced it
    prices: dict[str, Decimal]  # the cycle's snapshot prices (empty: not stored)


@dataclass(frozen=True)
class VerdictKey:
    """Which verdict's inputs to read: its agent, cycle and decision."""

    agent_id: str
    cycle_id: str
    decision_id: str


_VERDICT_INPUTS = (
    f"SELECT r.n, {_ACCOUNT_COLUMNS}, {_held_positions('a.llm_id')}, "
    f"{cycles.cycle_and_prices_columns('r.cycle_id')}, "
    "EXISTS (SELECT 1 FROM decisions WHERE decision_id = r.decision_id) AS decided, "
    "(SELECT count(*) FROM decisions d JOIN cycles c ON c.cycle_id = d.cycle_id "
    "WHERE d.cycle_id = r.cycle_id AND d.llm_id = ANY(c.expected_agents)) AS cycle_decisions "
    "FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY "
    "AS r(llm_id, cycle_id, decision_id, n) JOIN llm_accounts a ON a.llm_id = r.llm_id "
    "ORDER BY a.llm_id FOR NO KEY UPDATE OF a"
)


async def verdict_inputs(
    conn: Connection, keys: Sequence[VerdictKey]
) -> list[VerdictInputs | None]:
    """Everything applying each verdict reads, for all of them in one round trip: the
    account (locked, in agent order) and its open positions, the cycle (locked) and its
    snapshot prices, whether the decision is stored already and how many of the cycle's
    are; in the order of ``keys``, None where the agent has no account.

    The counts are read as of the statement's start: exact as long as one consumer applies
    the verdicts (the books' consumer, in stream order), which adds the ones it applies
    after the read. The cycles are locked by the same statement as the accounts; the only
    other transaction locking cycles (the deadline watcher's) locks no account, so the
    order between the two cannot deadlock."""
    records = await conn.fetch(
        _VERDICT_INPUTS,
        [k.agent_id for k in keys],
        [k.cycle_id for k in keys],
        [k.decision_id for k in keys],
    )
    found: list[VerdictInputs | None] = [None] * len(keys)
    for record in records:
        values = dict(record)
        index = values.pop("n") - 1
        decided, counted = values.pop("decided"), values.pop("cycle_decisions")
        cycle, prices = cycles.cycle_and_prices_of(values)
        account, positions = _portfolio_of(values)
        found[index] = VerdictInputs(decided, counted, account, positions, cycle, prices)
    return found


async def lock_open_positions(conn: Connection, agent_ids: Sequence[str]) -> list[PositionRow]:
    """Lock and return every open position of these accounts, in id order."""
    records = await conn.fetch(
        f"SELECT {COLUMNS} FROM positions WHERE status = 'OPEN' AND llm_id = ANY($1::text[]) "
        "ORDER BY id FOR NO KEY UPDATE",
        list(agent_ids),
    )
    return [_position(r) for r in records]


_OPEN_UNREALIZED = """
SELECT llm_id, sum(unrealized_pnl) AS unrealized FROM positions
WHERE status = 'OPEN' AND llm_id = ANY($1::text[]) GROUP BY llm_id
"""


async def open_unrealized(conn: Connection, agent_ids: Sequence[str]) -> dict[str, Decimal]:
    """The unrealized PnL of each of these accounts' open positions, summed (absent: none)."""
    records = await conn.fetch(_OPEN_UNREALIZED, list(agent_ids))
    return {r["llm_id"]: r["unrealized"] for r in records}


async def open_position(
    conn: Connection,
    position_id: UUID,
    agent_id: str,
    symbol: str,
    opening: Opening,
    *,
    stop_loss: Decimal | None,
    take_profit: Decimal | None,
    cycle_id: str | None,
    now: datetime,
) -> PositionRow:
    """Insert the position and its opening trade, in one statement."""
    record = await conn.fetchrow(
        "WITH opened AS (INSERT INTO positions (id, llm_id, symbol, side, entry_price, "
        "current_price, quantity, leverage, margin, unrealized_pnl, liquidation_price, "
        "stop_loss, take_profit, status, opened_at, cycle_id, entry_fee) "
        "VALUES ($14, $1, $2, $3, $4, $4, $5, $6, $7, 0, $8, $9, $10, 'OPEN', $11, $12, $13) "
        f"RETURNING {COLUMNS}), "
        "traded AS (INSERT INTO trades (llm_id, position_id, symbol, action, side, entry_price, "
        "quantity, fees, executed_at, cycle_id) "
        "VALUES ($1, $14, $2, $15, $3, $4, $5, $13, $11, $12)) "
        "SELECT * FROM opened",
        agent_id,
        symbol,
        opening.side.value,
        opening.entry_price,
        opening.quantity,
        opening.leverage,
        opening.margin,
        opening.liquidation_price,
        stop_loss,
        take_profit,
        now,
        cycle_id,
        opening.fee,
        position_id,
        "BUY" if opening.side is PositionSide.LONG else "SELL",
    )
    return _position(record)


async def close_position(
    conn: Connection,
    position: PositionRow,
    closing: Closing,
    *,
    status: PositionStatus,
    exit_reason: str,
    cycle_id: str | None,
    now: datetime,
) -> PositionRow:
    """Close the position and insert its closing trade, in one statement; the closed row."""
    record = await conn.fetchrow(
        "WITH closed AS (UPDATE positions SET status = $2, current_price = $3, "
        f"unrealized_pnl = 0, closed_at = $4 WHERE id = $1 RETURNING {COLUMNS}), "
        "traded AS (INSERT INTO trades (llm_id, position_id, symbol, action, side, "
        "entry_price, exit_price, quantity, realized_pnl, pnl_percentage, fees, exit_reason, "
        "executed_at, closed_at, cycle_id) "
        "VALUES ($5, $1, $6, $7, $8, $9, $3, $10, $11, $12, $13, $14, $4, $4, $15)) "
        "SELECT * FROM closed",
        position.id,
        status.value,
        closing.exit_price,
        now,
        position.agent_id,
        position.symbol,
        "SELL" if position.side is PositionSide.LONG else "BUY",
        position.side.value,
        position.entry_price,
        position.quantity,
        closing.realized_pnl,
        closing.pnl_percentage,
        closing.fee,
        exit_reason,
        cycle_id,
    )
    return _position(record)


_STATUSES = {
    "open": ["OPEN"],
    "closed": ["CLOSED", "LIQUIDATED"],
    "all": ["OPEN", "CLOSED", "LIQUIDATED"],
}
_LISTED = "status = ANY($1::text[]) AND ($2::text IS NULL OR llm_id = $2)"


async def positions_page(
    conn: Connection, status: str, agent_id: str | None, limit: int, offset: int
) -> tuple[list[PositionRow], int]:
    """Positions in ``status`` (open, closed or all) of one agent or all, newest first: one
    page and how many there are."""
    statuses = _STATUSES[status]
    total = await conn.fetchval(
        f"SELECT count(*) FROM positions WHERE {_LISTED}", statuses, agent_id
    )
    records = await conn.fetch(
        f"SELECT {COLUMNS} FROM positions WHERE {_LISTED} "
        "ORDER BY opened_at DESC, id LIMIT $3 OFFSET $4",
        statuses,
        agent_id,
        limit,
        offset,
    )
    return [_position(r) for r in records], int(total)


# ---------------------------------------------------------------- marks


async def latest_mark(conn: Connection) -> datetime | None:
    """The market time of the newest mark applied, None before the first."""
    latest: datetime | None = await conn.fetchval("SELECT max(marked_at) FROM symbol_marks")
    return latest
