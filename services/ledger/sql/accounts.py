"""``llm_accounts``: one row per agent, its book and counters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import asyncpg
from asyncpg import Connection

from services.common.lineup import Lineup
from services.ledger.accounting import Book

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


@dataclass(frozen=True)
class AccountRow:
    agent_id: str
    provider: str
    model_name: str
    display_name: str
    balance: Decimal
    margin_used: Decimal
    total_pnl: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    total_fees: Decimal
    total_trades: int
    winning_trades: int
    losing_trades: int
    open_positions: int
    is_active: bool
    initial_balance: Decimal
    total_funding: Decimal

    @property
    def book(self) -> Book:
        return Book(**{f.name: getattr(self, f.name) for f in fields(Book)})

    @property
    def equity(self) -> Decimal:
        return self.book.equity

    def with_book(self, book: Book) -> AccountRow:
        """This account holding ``book``, as :func:`books_update` writes it."""
        held = {f.name: getattr(book, f.name) for f in fields(Book)}
        return replace(self, **held, total_pnl=book.total_pnl)


# The tables name an agent by the schema's first word for it, ``llm_id``; rows say agent_id.
AGENT_COLUMN = "llm_id"


def column_names(row_type: type[DataclassInstance]) -> tuple[str, ...]:
    """A row dataclass's columns, in its fields' order."""
    names = (f.name for f in fields(row_type))
    return tuple(AGENT_COLUMN if name == "agent_id" else name for name in names)


def row_values(record: asyncpg.Record | Mapping[str, Any]) -> dict[str, Any]:
    """A record's values by row field: the ``llm_id`` column becomes ``agent_id``."""
    values = dict(record)
    values["agent_id"] = values.pop(AGENT_COLUMN)
    return values


COLUMNS = ", ".join(column_names(AccountRow))


def account_row(record: asyncpg.Record | Mapping[str, Any]) -> AccountRow:
    return AccountRow(**row_values(record))


async def upsert_accounts(
    conn: Connection, lineup: Lineup, initial_balance: Decimal, now: datetime
) -> None:
    """One row per agent; the balance is set for new rows only, so a restart resets nothing."""
    for agent in lineup.agents:
        await conn.execute(
            "INSERT INTO llm_accounts (llm_id, provider, model_name, display_name, balance, "
            "initial_balance, is_active, created_at, updated_at) "
            "VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $7) "
            "ON CONFLICT (llm_id) DO UPDATE SET provider = EXCLUDED.provider, "
            "model_name = EXCLUDED.model_name, display_name = EXCLUDED.display_name, "
            "is_active = EXCLUDED.is_active, updated_at = EXCLUDED.updated_at",
            agent.id,
            agent.provider,
            agent.model,
            agent.display_name,
            initial_balance,
            agent.enabled,
            now,
        )
    # Agents dropped from the line-up keep their history but stop racing.
    await conn.execute(
        "UPDATE llm_accounts SET is_active = false, updated_at = $2 "
        "WHERE is_active AND NOT (llm_id = ANY($1::text[]))",
        [a.id for a in lineup.agents],
        now,
    )


async def account(
    conn: Connection, agent_id: str, *, for_update: bool = False
) -> AccountRow | None:
    lock = " FOR NO KEY UPDATE" if for_update else ""
    record = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM llm_accounts WHERE llm_id = $1{lock}", agent_id
    )
    return None if record is None else account_row(record)


async def accounts(conn: Connection) -> list[AccountRow]:
    records = await conn.fetch(f"SELECT {COLUMNS} FROM llm_accounts ORDER BY llm_id")
    return [account_row(r) for r in records]


async def agent_ids(conn: Connection) -> list[str]:
    """Every account's agent id."""
    return [r["llm_id"] for r in await conn.fetch("SELECT llm_id FROM llm_accounts")]


# What writing a book sets, in :func:`book_values` order, and the columns' types.
_BOOK_COLUMNS = (
    ("llm_id", "text"),
    ("balance", "numeric"),
    ("margin_used", "numeric"),
    ("total_pnl", "numeric"),
    ("realized_pnl", "numeric"),
    ("unrealized_pnl", "numeric"),
    ("total_fees", "numeric"),
    ("total_trades", "integer"),
    ("winning_trades", "integer"),
    ("losing_trades", "integer"),
    ("open_positions", "integer"),
    ("updated_at", "timestamptz"),
    ("total_funding", "numeric"),
)
BOOK_WIDTH = len(_BOOK_COLUMNS)


def books_update(first: int) -> str:
    """The update writing books given as :func:`book_values` rows, one array per column in
    parameters ``$first`` on (to run inside another statement)."""
    arrays = ", ".join(f"${first + i}::{kind}[]" for i, (_, kind) in enumerate(_BOOK_COLUMNS))
    names = ", ".join(name for name, _ in _BOOK_COLUMNS)
    sets = ", ".join(f"{name} = b.{name}" for name, _ in _BOOK_COLUMNS[1:])
    return (
        f"UPDATE llm_accounts a SET {sets} FROM unnest({arrays}) AS b ({names}) "
        "WHERE a.llm_id = b.llm_id"
    )


def book_values(agent_id: str, book: Book, now: datetime) -> tuple[Any, ...]:
    """An account's book as the parameters of its update: the agent first, ``now`` its time."""
    return (
        agent_id,
        book.balance,
        book.margin_used,
        book.total_pnl,
        book.realized_pnl,
        book.unrealized_pnl,
        book.total_fees,
        book.total_trades,
        book.winning_trades,
        book.losing_trades,
        book.open_positions,
        now,
        book.total_funding,
    )


async def trade_count(conn: Connection, agent_id: str | None) -> int:
    """Trades of one agent or all, from the accounts' counters (``verify`` checks that each
    equals its rows), so a page's total costs no count over the table."""
    total = await conn.fetchval(
        "SELECT coalesce(sum(total_trades), 0) FROM llm_accounts "
        "WHERE llm_id = $1 OR $1::text IS NULL",
        agent_id,
    )
    return int(total)


_RECOUNT = """
SELECT a.llm_id,
       coalesce(t.realized, 0)   AS realized_pnl,
       coalesce(t.fees, 0)       AS total_fees,
       coalesce(f.funding, 0)    AS total_funding,
       coalesce(p.margin, 0)     AS open_margin,
       coalesce(p.unrealized, 0) AS open_unrealized,
       coalesce(p.n, 0)          AS open_positions,
       coalesce(t.n, 0)          AS total_trades,
       coalesce(t.wins, 0)       AS winning_trades,
       coalesce(t.losses, 0)     AS losing_trades
FROM llm_accounts a
LEFT JOIN (
    SELECT llm_id, sum(coalesce(realized_pnl, 0)) AS realized, sum(fees) AS fees,
           count(*)::int AS n,
           (count(*) FILTER (WHERE exit_price IS NOT NULL AND realized_pnl > 0))::int AS wins,
           (count(*) FILTER (WHERE exit_price IS NOT NULL AND realized_pnl <= 0))::int AS losses
    FROM trades GROUP BY llm_id
) t ON t.llm_id = a.llm_id
LEFT JOIN (
    SELECT llm_id, sum(amount) AS funding FROM funding_payments GROUP BY llm_id
) f ON f.llm_id = a.llm_id
LEFT JOIN (
    SELECT llm_id, sum(margin) AS margin, sum(unrealized_pnl) AS unrealized, count(*)::int AS n
    FROM positions WHERE status = 'OPEN' GROUP BY llm_id
) p ON p.llm_id = a.llm_id
"""


async def recounts(conn: Connection) -> list[asyncpg.Record]:
    """Per account, what its trades, funding and open positions say its book should hold."""
    return list(await conn.fetch(_RECOUNT))
