"""What a run of marks (consecutive ticks, or a cycle's snapshot) reads before it and
writes after it: its books in two statements, its effects in one.

The books lock rows FOR NO KEY UPDATE: they never change a key, and a row written
elsewhere that refers to an account (a curve bucket, a proposal, a model call) takes a
key-share lock on it for its foreign key, which FOR UPDATE would block, and deadlock with
(seen in replays: a second lost to Postgres's deadlock timeout each time).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from asyncpg import Connection

from services.ledger.accounting import Book
from services.ledger.sql import accounts
from services.ledger.sql.accounts import AccountRow
from services.ledger.sql.arrays import columns
from services.ledger.sql.positions import PositionRow, lock_open_positions
from services.ledger.sql.trades import FundingPayment

_ACCOUNT_COLUMNS = accounts.column_names(AccountRow)

# The holders are locked in one fixed order (by id), so concurrent transactions cannot
# deadlock, and their books read as locked (the latest); every account is read too.
_BOOKS = (
    f"WITH holders AS (SELECT {accounts.COLUMNS} FROM llm_accounts WHERE llm_id IN "
    "(SELECT llm_id FROM positions WHERE status = 'OPEN' AND symbol = ANY($1::text[])) "
    "ORDER BY llm_id FOR NO KEY UPDATE) "
    f"SELECT ARRAY(SELECT ROW({accounts.COLUMNS}) FROM llm_accounts ORDER BY llm_id) "
    f"AS accounts, ARRAY(SELECT ROW({accounts.COLUMNS}) FROM holders) AS holders, "
    "ARRAY(SELECT symbol FROM symbol_marks WHERE symbol = ANY($1::text[]) ORDER BY symbol) "
    "AS marked, ARRAY(SELECT marked_at FROM symbol_marks WHERE symbol = ANY($1::text[]) "
    "ORDER BY symbol) AS marked_at"
)


@dataclass(frozen=True)
class RunBooks:
    """What a run reprices: every account (for the equity snapshots), the books of those
    holding a position on the run's symbols (locked) and all these holders' open positions
    (locked), and each symbol's latest mark time (absent: never marked)."""

    accounts: list[AccountRow]
    held: dict[str, Book]
    positions: list[PositionRow]
    marked_at: dict[str, datetime]


def _account(row: Sequence[Any]) -> AccountRow:
    return accounts.account_row(dict(zip(_ACCOUNT_COLUMNS, row, strict=True)))


async def load_books(conn: Connection, symbols: Sequence[str]) -> RunBooks:
    """The run's books, accounts locked before positions as a verdict takes them."""
    record = await conn.fetchrow(_BOOKS, sorted(symbols))
    rows = [_account(row) for row in record["accounts"]]
    held = {a.agent_id: a.book for a in (_account(row) for row in record["holders"])}
    positions = await lock_open_positions(conn, sorted(held)) if held else []
    marked_at = dict(zip(record["marked"], record["marked_at"], strict=True))
    return RunBooks(rows, held, positions, marked_at)


_SAVE = f"""
WITH marks AS (
    INSERT INTO symbol_marks (symbol, marked_at, mark_price)
    SELECT s, t, p FROM unnest($1::text[], $2::timestamptz[], $3::numeric[]) AS u (s, t, p)
    ORDER BY s
    ON CONFLICT (symbol) DO UPDATE SET marked_at = EXCLUDED.marked_at,
        mark_price = EXCLUDED.mark_price WHERE symbol_marks.marked_at <= EXCLUDED.marked_at
), moved AS (
    UPDATE positions p SET current_price = m.price, unrealized_pnl = m.pnl
    FROM unnest($4::uuid[], $5::numeric[], $6::numeric[]) AS m (id, price, pnl)
    WHERE p.id = m.id
), paid AS (
    INSERT INTO funding_payments (llm_id, position_id, symbol, funding_time, mark_price,
        quantity, funding_rate, amount, paid_at)
    SELECT * FROM unnest($7::text[], $8::uuid[], $9::text[], $10::timestamptz[],
        $11::numeric[], $12::numeric[], $13::numeric[], $14::numeric[], $15::timestamptz[])
), books AS ({accounts.books_update(16)})
INSERT INTO equity_snapshots (llm_id, at, source, equity, balance, margin_used,
    unrealized_pnl, total_fees, total_funding)
SELECT * FROM unnest($29::text[], $30::timestamptz[], $31::text[], $32::numeric[],
    $33::numeric[], $34::numeric[], $35::numeric[], $36::numeric[], $37::numeric[])
"""


@dataclass(frozen=True)
class RunEffects:
    """What a run changed: symbols' (market time, mark), positions' (id, price, unrealized
    PnL), funding paid, accounts' (book, time), equity snapshots (agent, time, source,
    book)."""

    marks: Mapping[str, tuple[datetime, Decimal]]
    positions: Sequence[tuple[UUID, Decimal, Decimal]]
    funding: Sequence[FundingPayment]
    books: Mapping[str, tuple[Book, datetime]]
    equity: Sequence[tuple[str, datetime, str, Book]]


async def save_effects(conn: Connection, effects: RunEffects) -> None:
    """Write every kind of effect of the run, in one statement. Marks only move forward:
    a symbol already marked at a later market time keeps that mark. Symbols are taken in
    order, so concurrent markers cannot deadlock."""
    symbols = sorted(effects.marks)
    funding = [
        (
            p.position.agent_id,
            p.position.id,
            p.position.symbol,
            p.funding_time,
            p.mark_price,
            p.position.quantity,
            p.funding_rate,
            p.amount,
            p.paid_at,
        )
        for p in effects.funding
    ]
    books = [accounts.book_values(agent, book, at) for agent, (book, at) in effects.books.items()]
    equity = [
        (
            agent,
            at,
            source,
            book.equity,
            book.balance,
            book.margin_used,
            book.unrealized_pnl,
            book.total_fees,
            book.total_funding,
        )
        for agent, at, source, book in effects.equity
    ]
    await conn.execute(
        _SAVE,
        symbols,
        [effects.marks[s][0] for s in symbols],
        [effects.marks[s][1] for s in symbols],
        *columns(effects.positions, 3),
        *columns(funding, 9),
        *columns(books, accounts.BOOK_WIDTH),
        *columns(equity, 9),
    )
