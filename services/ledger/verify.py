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

from services.ledger import chain, store
from services.ledger.store import AccountRow


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
        f"{account.llm_id}: {name} is {actual}, the rows say {expected}"
        for name, actual, expected in checks
        if actual != expected
    ]


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


_OVERDRAWN = """
SELECT t.llm_id, t.position_id, t.realized_pnl, p.margin
FROM trades t JOIN positions p ON p.id = t.position_id
WHERE t.exit_price IS NOT NULL AND t.realized_pnl < -p.margin
"""


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
    record = await conn.fetchrow("SELECT seq, hash, proposals_until FROM verify_checkpoint")
    if record is None:
        return Checkpoint.start()
    return Checkpoint(int(record["seq"]), str(record["hash"]), record["proposals_until"])


async def _save(conn: asyncpg.Connection, point: Checkpoint, now: datetime) -> None:
    """Move the checkpoint forward to ``point`` (never back: two checks may race)."""
    await conn.execute(
        "INSERT INTO verify_checkpoint (id, seq, hash, proposals_until, verified_at) "
        "VALUES (true, $1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET seq = EXCLUDED.seq, "
        "hash = EXCLUDED.hash, proposals_until = EXCLUDED.proposals_until, "
        "verified_at = EXCLUDED.verified_at WHERE verify_checkpoint.seq <= EXCLUDED.seq",
        point.seq,
        point.hash,
        point.proposals_until,
        now,
    )


async def _still_there(conn: asyncpg.Connection, point: Checkpoint) -> list[str]:
    """The checkpoint's own row still carries the hash the next rows link to."""
    if point.seq == 0:
        return []
    stored = await conn.fetchval("SELECT hash FROM decisions WHERE seq = $1", point.seq)
    if stored == point.hash:
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
        unbooked = await store.unbooked_proposals(
            conn, now - unbooked_grace, None if full else start.proposals_until
        )
        accounts = {a.llm_id: a for a in await store.accounts(conn)}
        recounts = {
            r["llm_id"]: Recount(**{k: v for k, v in dict(r).items() if k != "llm_id"})
            for r in await conn.fetch(_RECOUNT)
        }
        overdrawn = await conn.fetch(_OVERDRAWN)
        rows = await store.chain_rows(conn, start.seq)
        head = await store.chain_head(conn)
        problems = await _still_there(conn, start)
    for llm_id, account in sorted(accounts.items()):
        problems += reconcile(account, recounts[llm_id])
        if account.balance < 0:
            problems.append(f"{llm_id}: balance {account.balance} is negative")
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
