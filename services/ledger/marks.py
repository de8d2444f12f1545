"""Ticks and snapshots: funding, then stops, targets and liquidations, then the mark.

On a tick, for each open position on a ticked symbol: funding is paid when a funding
time (00:00, 08:00, 16:00 UTC) passed while it was open, at the latest rate announced (a
replay: at each settlement its data carries, at that settlement's rate); then the bar's high and low
fire liquidation, stop loss or take profit (the worse for the trader first); what stays
open is marked to the tick's mark price. Each agent's equity is snapshotted afterwards.

A tick is applied once by its ``tick_id``, whatever message id its copy came under.
Marks only move forward in market time (``symbol_marks``): a tick or snapshot older than
the symbol's latest applied mark still pays its funding and fires its exits once, but
leaves ``current_price`` and ``unrealized_pnl`` at the newer mark.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from uuid import UUID

import asyncpg

from services.common import subjects
from services.common.contracts import (
    AccountEvent,
    MarketTick,
    PositionStatus,
    TickPrice,
)
from services.common.funding import FUNDING_INTERVAL, funding_times, last_funding_time
from services.ledger import accounting, sql
from services.ledger.accounting import Book
from services.ledger.closing import close_and_announce, closing_at, liquidate
from services.ledger.outbox import enqueue
from services.ledger.sql.positions import PositionRow
from services.ledger.views import account_view


@dataclass
class MarkOutcome:
    agents: list[str] = field(default_factory=list)
    liquidations: int = 0


@dataclass
class TickOutcome:
    duplicate: bool = False
    agents: list[str] = field(default_factory=list)
    # Symbols already marked at a later market time, left at that mark.
    stale_symbols: list[str] = field(default_factory=list)
    exits: dict[str, int] = field(default_factory=dict)
    funding_payments: int = 0


async def _lock_holdings(
    conn: asyncpg.Connection, symbols: list[str]
) -> tuple[dict[str, Book], list[PositionRow]]:
    """Lock the accounts holding positions on ``symbols``, then exactly their positions;
    the accounts' books and the positions.

    Accounts before positions, the order a verdict takes them in: no deadlock. A verdict
    of an account not locked here may open a position on these symbols after the holders
    are read; that position is left out (it opened after this tick, the next one marks it),
    so every position handled here belongs to a locked account and no book is missed.
    """
    holders = await sql.accounts.lock_holders(conn, symbols)
    if not holders:
        return {}, []
    books = {a.agent_id: a.book for a in holders}
    return books, await sql.positions.open_positions_on(conn, symbols, list(books))


async def _save_marked_books(
    conn: asyncpg.Connection, books: Mapping[str, Book], now: datetime
) -> None:
    totals = await sql.positions.open_unrealized(conn, list(books))
    await sql.accounts.save_books(
        conn,
        {agent: book.marked(totals.get(agent, Decimal(0))) for agent, book in books.items()},
        now,
    )


# A position's exit on this pass, if any: (conn, position, books, fresh) -> fired. It
# updates ``books`` when it closes the position; ``fresh`` is False when a later mark of
# the position's symbol is already applied.
Exit = Callable[[asyncpg.Connection, PositionRow, dict[str, Book], bool], Awaitable[bool]]
# Before the exits: (conn, positions, books) -> the accounts it changed (funding).
Before = Callable[[asyncpg.Connection, list[PositionRow], dict[str, Book]], Awaitable[set[str]]]


async def reprice(
    conn: asyncpg.Connection,
    mark_prices: Mapping[str, Decimal],
    now: datetime,
    *,
    at: datetime,
    exit: Exit,
    event_prefix: str,
    before: Before | None = None,
) -> tuple[list[str], set[str]]:
    """Mark every open position on these symbols, after ``before`` and each one's ``exit``.

    The one path of ticks and snapshots: lock the holders and their positions, advance
    the symbols' marks (``at`` is their market time), run ``before``, then per position its
    ``exit`` or, when its symbol's mark is fresh, the new mark; save the books and
    announce each account an exit or ``before`` changed (event ``{event_prefix}:{agent}``).
    Returns the agents holding positions and the fresh symbols.
    """
    if not mark_prices:
        return [], set()
    books, positions = await _lock_holdings(conn, sorted(mark_prices))
    # After the positions, as a verdict takes them; a stale mark changes no position.
    fresh = await sql.positions.advance_marks(conn, mark_prices, at)
    if not books:
        return [], fresh
    agents = list(books)
    changed = set() if before is None else await before(conn, positions, books)
    marks: list[tuple[UUID, Decimal, Decimal]] = []
    for p in positions:
        if await exit(conn, p, books, p.symbol in fresh):
            changed.add(p.agent_id)
            continue
        if p.symbol not in fresh:
            continue
        mark = mark_prices[p.symbol]
        marks.append(
            (p.id, mark, accounting.unrealized_pnl(p.side, p.entry_price, mark, p.quantity))
        )
    await sql.positions.mark_positions(conn, marks)
    await _save_marked_books(conn, books, now)
    for agent_id in sorted(changed):
        await _announce_account(conn, agent_id, f"{event_prefix}:{agent_id}", now)
    return agents, fresh


async def mark_to_market(
    conn: asyncpg.Connection,
    mark_prices: Mapping[str, Decimal],
    now: datetime,
    *,
    at: datetime,
    cycle_id: str | None = None,
) -> MarkOutcome:
    """Reprice every open position on these symbols, liquidating those the mark went through.

    A snapshot can arrive after a gap no tick covered: a position whose mark is at or
    past its liquidation price is liquidated there rather than left open below zero.
    ``at`` is the marks' market time: a symbol already marked later is left alone.
    """
    outcome = MarkOutcome()

    async def liquidated(
        conn: asyncpg.Connection, p: PositionRow, books: dict[str, Book], fresh: bool
    ) -> bool:
        if not fresh or not accounting.is_liquidated(
            p.side, p.liquidation_price, mark_prices[p.symbol]
        ):
            return False
        books[p.agent_id] = await liquidate(conn, p, books[p.agent_id], cycle_id=cycle_id, now=now)
        outcome.liquidations += 1
        return True

    outcome.agents, _ = await reprice(
        conn,
        mark_prices,
        now,
        at=at,
        exit=liquidated,
        event_prefix=f"account:mark:{cycle_id or now.isoformat()}",
    )
    return outcome


async def _announce_account(
    conn: asyncpg.Connection, agent_id: str, event_id: str, now: datetime
) -> None:
    row = await sql.accounts.account(conn, agent_id)
    if row is None:
        return
    await enqueue(
        conn,
        subjects.ledger_account(agent_id),
        event_id,
        AccountEvent(event_id=event_id, account=account_view(row), at=now),
    )


class TickProcessor:
    """Applies one tick inside the caller's transaction."""

    def __init__(self, taker_fee_rate: Decimal) -> None:
        self._fee_rate = taker_fee_rate

    async def apply(self, conn: asyncpg.Connection, tick: MarketTick, now: datetime) -> TickOutcome:
        # The tick's own id, not only the message id: a copy republished under another
        # Nats-Msg-Id must not snapshot equity again nor re-mark at its (older) prices.
        if not await sql.cycles.claim_tick(conn, tick.tick_id, now):
            return TickOutcome(duplicate=True)
        outcome = TickOutcome()
        prices = {p.symbol: p for p in tick.prices}

        async def fund(
            conn: asyncpg.Connection, positions: list[PositionRow], books: dict[str, Book]
        ) -> set[str]:
            return await self._fund(conn, tick, positions, books=books, outcome=outcome, now=now)

        async def exit(
            conn: asyncpg.Connection, p: PositionRow, books: dict[str, Book], fresh: bool
        ) -> bool:
            # An old bar still happened: its exits fire, once, even when it is stale.
            return await self._exit(
                conn, position=p, price=prices[p.symbol], books=books, outcome=outcome, now=now
            )

        outcome.agents, fresh = await reprice(
            conn,
            {s: p.mark_price for s, p in prices.items()},
            now,
            at=tick.at,
            exit=exit,
            event_prefix=f"account:tick:{tick.tick_id}",
            before=fund,
        )
        outcome.stale_symbols = sorted(set(prices) - fresh)
        await sql.equity.snapshot_equity(conn, tick.at, f"tick:{tick.tick_id}")
        return outcome

    async def _fund(
        self,
        conn: asyncpg.Connection,
        tick: MarketTick,
        positions: list[PositionRow],
        *,
        books: dict[str, Book],
        outcome: TickOutcome,
        now: datetime,
    ) -> set[str]:
        """Charge the funding due at this tick; the agents whose books it changed."""
        changed: set[str] = set()
        prices = {p.symbol: p for p in tick.prices}
        if tick.data_time:
            # A replay: the data's own settlements, each at its time and its rate.
            settled = {s: p.settlement for s, p in prices.items() if p.settlement is not None}
            due = [
                p
                for p in positions
                if p.symbol in settled and p.opened_at <= settled[p.symbol].funding_time
            ]
            rates = {s: settlement.rate for s, settlement in settled.items()}
            latest = {s: settlement.funding_time for s, settlement in settled.items()}
        else:
            # Live: every 00:00, 08:00 and 16:00 UTC at the latest rate the market announced.
            last = last_funding_time(tick.at)
            due = [p for p in positions if p.opened_at <= last]
            rates = await sql.cycles.latest_funding_rates(conn, sorted({p.symbol for p in due}))
            latest = {}
        if not due:
            return changed
        last_paid = await sql.trades.last_funding_times(conn, [p.id for p in due])
        for position in due:
            rate = rates.get(position.symbol)
            if rate is None:
                continue
            paid = last_paid.get(position.id)
            if position.symbol in latest:
                settled_at = latest[position.symbol]
                times = [] if paid is not None and paid >= settled_at else [settled_at]
            else:
                # After a gap (ticks stopped, the ledger was down) every funding time missed
                # since the opening or the last payment is charged, each once.
                since = position.opened_at if paid is None else paid + FUNDING_INTERVAL
                times = funding_times(since, tick.at)
            mark = prices[position.symbol].mark_price
            for when in times:
                amount = accounting.funding_payment(position.side, mark, position.quantity, rate)
                # An account never goes below zero: it pays at most what its balance holds.
                amount = min(amount, books[position.agent_id].balance)
                await sql.trades.insert_funding(
                    conn,
                    position,
                    funding_time=when,
                    mark_price=mark,
                    funding_rate=rate,
                    amount=amount,
                    now=now,
                )
                books[position.agent_id] = books[position.agent_id].funded(amount)
                changed.add(position.agent_id)
                outcome.funding_payments += 1
        return changed

    async def _exit(
        self,
        conn: asyncpg.Connection,
        *,
        position: PositionRow,
        price: TickPrice,
        books: dict[str, Book],
        outcome: TickOutcome,
        now: datetime,
    ) -> bool:
        fired = accounting.triggered_exit(
            position.side,
            price.high,
            price.low,
            liquidation=position.liquidation_price,
            stop_loss=position.stop_loss,
            take_profit=position.take_profit,
        )
        if fired is None:
            return False
        if fired.reason == accounting.EXIT_LIQUIDATION:
            closing = accounting.liquidation_closing(position.margin, fired.price)
            status = PositionStatus.LIQUIDATED
        else:
            closing = closing_at(position, fired.price, self._fee_rate)
            status = PositionStatus.CLOSED
        books[position.agent_id] = await close_and_announce(
            conn,
            position,
            closing,
            books[position.agent_id],
            status=status,
            exit_reason=fired.reason,
            cycle_id=None,
            now=now,
        )
        outcome.exits[fired.reason] = outcome.exits.get(fired.reason, 0) + 1
        return True
