"""``python -m services.ledger verify``: recompute every account from the rows beneath it.

The decision chain and the proposals are checked from the last clean check on (the
checkpoint in ``verify_checkpoint``), or all of them with ``full``: a row altered after
the checkpoint is found by either, one altered before it by a full check only.

balance == initial_balance + sum(realized PnL) - sum(fees) - sum(funding)
- sum(margin of open positions), every counter equals its recount, no closed trade lost
more than its position's margin, the decision log's hash chain is unbroken, and every
decision an agent proposed reached the books (a proposal younger than the grace may still
be on its way: risk retries one while the ledger is unavailable, until its cycle ends).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg

from services.ledger import chain, sql
from services.ledger.sql.accounts import AccountRow


@dataclass(frozen=True)
class Recount:
    """What the trades and positions say an account should hold."""

    realized_pnl: Decimal
    total_fees: Decimal
    total_funding: Decimal
    open_margin: Decimal
    open_unrealized: Decimal
    open_positions: int
    total_trades: int
    winning_trades: int
    losing_trades: int


def reconcile(account: AccountRow, recount: Recount) -> list[str]:
    """Every way ``account`` disagrees with ``recount``, one line each (empty: it agrees)."""
    expected_balance = (
        account.initial_balance
        + recount.realized_pnl
        - recount.total_fees
        - recount.total_funding
        - recount.open_margin
    )
    expected_total_pnl = (
        recount.realized_pnl - recount.total_fees - recount.total_funding + recount.open_unrealized
    )
    checks: list[tuple[str, object, object]] = [
        ("balance", account.balance, expected_balance),
        ("margin_used", account.margin_used, recount.open_margin),
        ("realized_pnl", account.realized_pnl, recount.realized_pnl),
        ("unrealized_pnl", account.unrealized_pnl, recount.open_unrealized),
        ("total_fees", account.total_fees, recount.total_fees),
        ("total_funding", account.total_funding, recount.total_funding),
        ("total_pnl", account.total_pnl, expected_total_pnl),
        ("open_positions", account.open_positions, recount.open_positions),
        ("total_trades", account.total_trades, recount.total_trades),
        ("winning_trades", account.winning_trades, recount.winning_trades),
        ("losing_trades", account.losing_trades, recount.losing_trades),
    ]
    return [
        f"{account.agent_id}: {name} is {actual}, the rows say {expected}"
        for name, actual, expected in checks
        if actual != expected
    ]


@dataclass(frozen=True)
class Findings:
    problems: list[str]
    checked_accounts: int
    checked_decisions: int
    full: bool = True
    checked_from: int = 0


@dataclass(frozen=True)
class Checkpoint:
    """The last clean check: the chain intact up to ``seq`` (whose hash is ``hash``), and
    every proposal recorded before ``proposals_until`` in the books."""

    seq: int
    hash: str
    proposals_until: datetime

    @classmethod
    def start(cls) -> Checkpoint:
        return cls(0, chain.GENESIS, datetime.min.replace(tzinfo=UTC))


# Longer than any cycle's decision window with room to spare (5-minute cycles by default).
UNBOOKED_GRACE = timedelta(minutes=10)


async def checkpoint(conn: asyncpg.Connection) -> Checkpoint:
    record = await sql.decisions.checkpoint(conn)
    if record is None:
        return Checkpoint.start()
    return Checkpoint(int(record["seq"]), str(record["hash"]), record["proposals_until"])


async def _save(conn: asyncpg.Connection, point: Checkpoint, now: datetime) -> None:
    """Move the checkpoint forward to ``point`` (never back: two checks may race)."""
    await sql.decisions.save_checkpoint(conn, point.seq, point.hash, point.proposals_until, now)


async def _still_there(conn: asyncpg.Connection, point: Checkpoint) -> list[str]:
    """The checkpoint's own row still carries the hash the next rows link to."""
    if point.seq == 0:
        return []
    if await sql.decisions.stored_hash(conn, point.seq) == point.hash:
        return []
    return [
        f"the decision at chain position {point.seq}, where the last clean check stopped, "
        "is gone or changed (run a full check)"
    ]


async def examine(
    conn: asyncpg.Connection, unbooked_grace: timedelta = UNBOOKED_GRACE, *, full: bool = True
) -> Findings:
    """Recount every account, and check the hash chain and the proposals, read in one
    consistent snapshot: all of them (``full``), or those after the last clean check.
    A clean check moves the checkpoint to where it stopped."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        now = await conn.fetchval("SELECT now()")
        start = Checkpoint.start() if full else await checkpoint(conn)
        unbooked = await sql.decisions.unbooked_proposals(
            conn, now - unbooked_grace, None if full else start.proposals_until
        )
        accounts = {a.agent_id: a for a in await sql.accounts.accounts(conn)}
        recounts = {
            r["llm_id"]: Recount(**{k: v for k, v in dict(r).items() if k != "llm_id"})
            for r in await sql.accounts.recounts(conn)
        }
        overdrawn = await sql.trades.overdrawn(conn)
        rows = await sql.decisions.chain_rows(conn, start.seq)
        head = await sql.decisions.chain_head(conn)
        problems = await _still_there(conn, start)
    for agent_id, account in sorted(accounts.items()):
        problems += reconcile(account, recounts[agent_id])
        if account.balance < 0:
            problems.append(f"{agent_id}: balance {account.balance} is negative")
    problems += [
        f"{r['llm_id']}: position {r['position_id']} lost {-r['realized_pnl']}, "
        f"more than its margin {r['margin']}"
        for r in overdrawn
    ]
    problems += chain.check(rows, head, (start.seq, start.hash))
    problems += [
        f"{r['llm_id']}: decision {r['decision_id']} was proposed (recorded "
        f"{r['recorded_at'].isoformat()}) but never reached the books"
        for r in unbooked
    ]
    if not problems:
        until = max(start.proposals_until, now - unbooked_grace)
        async with conn.transaction():
            await _save(conn, Checkpoint(head[0], head[1], until), now)
    return Findings(problems, len(accounts), len(rows), full, start.seq)


async def verify(
    conn: asyncpg.Connection, unbooked_grace: timedelta = UNBOOKED_GRACE, *, full: bool = True
) -> list[str]:
    """All mismatches across all accounts and the decision chain (empty: the books agree)."""
    return (await examine(conn, unbooked_grace, full=full)).problems
