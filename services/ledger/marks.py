"""Ticks and snapshots: funding, then stops, targets and liquidations, then the mark.

On a tick, for each open position on a ticked symbol: funding is paid when a funding
time (00:00, 08:00, 16:00 UTC) passed while it was open; then the bar's high and low
fire liquidation, stop loss or take profit (the worse for the trader first); what stays
open is marked to the tick's mark price. Each agent's equity is snapshotted afterwards.

A tick is applied once by its ``tick_id``, whatever message id its copy came under.
Marks only move forward in market time (``symbol_marks``): a tick or snapshot older than
the symbol's latest applied mark still pays its funding and fires its exits once, but
leaves ``current_price`` and ``unrealized_pnl`` at the newer mark.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
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
from services.ledger import accounting, sql
from services.ledger.accounting import Book
from services.ledger.closing import close_and_announce, liquidate
from services.ledger.outbox import enqueue
from services.ledger.sql.positions import PositionRow
from services.ledger.views import account_view

FUNDING_HOURS = 8


def funding_time(at: datetime) -> datetime:
    """The latest funding time (00:00, 08:00 or 16:00 UTC) at or before ``at``."""
    utc = at.astimezone(UTC)
    return utc.replace(hour=utc.hour - utc.hour % FUNDING_HOURS, minute=0, second=0, microsecond=0)


def funding_times(first: datetime, last: datetime) -> list[datetime]:
    """Every funding time from ``first`` to ``last``, both included, oldest first."""
    times: list[datetime] = []
    when = funding_time(last)
    while when >= first:
        times.append(when)
        when -= timedelta(hours=FUNDING_HOURS)
    return times[::-1]


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
) -> tuple[list[str], list[PositionRow]]:
    """Lock the accounts holding positions on ``symbols``, then exactly their positions.

    Accounts before positions, the order a verdict takes them in: no deadlock. A verdict
    of an account not locked here may open a position on these symbols after the holders
    are read; that position is left out (it opened after this tick, the next one marks it),
    so every position handled here belongs to a locked account and no book is missed.
    """
    agents = await sql.positions.open_position_holders(conn, symbols)
    if not agents:
        return [], []
    await sql.accounts.lock_accounts(conn, agents)
    return agents, await sql.positions.open_positions_on(conn, symbols, agents)


async def _save_marked_books(
    conn: asyncpg.Connection, books: Mapping[str, Book], now: datetime
) -> None:
    totals = await sql.positions.open_unrealized(conn, list(books))
    for llm_id, book in books.items():
        await sql.accounts.save_book(conn, llm_id, book.marked(totals.get(llm_id, Decimal(0))), now)


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
    if not mark_prices:
        return outcome
    symbols = sorted(mark_prices)
    agents, positions = await _lock_holdings(conn, symbols)
    # After the positions, as a tick takes them; a stale mark changes no position.
    fresh = await sql.positions.advance_marks(conn, mark_prices, at)
    if not agents:
        return outcome
    held = set(agents)
    books = {a.llm_id: a.book for a in await sql.accounts.accounts(conn) if a.llm_id in held}
    liquidated: set[str] = set()
    marks: list[tuple[UUID, Decimal, Decimal]] = []
    for p in positions:
        if p.symbol not in fresh:
            continue
        mark = mark_prices[p.symbol]
        if accounting.is_liquidated(p.side, p.liquidation_price, mark):
            books[p.llm_id] = await liquidate(conn, p, books[p.llm_id], cycle_id=cycle_id, now=now)
            liquidated.add(p.llm_id)
            outcome.liquidations += 1
            continue
        marks.append(
            (p.id, mark, accounting.unrealized_pnl(p.side, p.entry_price, mark, p.quantity))
        )
    await sql.positions.mark_positions(conn, marks)
    await _save_marked_books(conn, books, now)
    for llm_id in sorted(liquidated):
        event_id = f"account:mark:{cycle_id or now.isoformat()}:{llm_id}"
        await _announce_account(conn, llm_id, event_id, now)
    outcome.agents = agents
    return outcome


async def _announce_account(
    conn: asyncpg.Connection, llm_id: str, event_id: str, now: datetime
) -> None:
    row = await sql.accounts.account(conn, llm_id)
    if row is None:
        return
    await enqueue(
        conn,
        subjects.ledger_account(llm_id),
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
        symbols = sorted(prices)
        agents, positions = await _lock_holdings(conn, symbols) if symbols else ([], [])
        fresh = (
            await sql.positions.advance_marks(
                conn, {s: p.mark_price for s, p in prices.items()}, tick.at
            )
            if symbols
            else set()
        )
        if agents:
            held = set(agents)
            books = {
                a.llm_id: a.book for a in await sql.accounts.accounts(conn) if a.llm_id in held
            }
            changed: set[str] = set()
            await self._fund(
                conn,
                tick=tick,
                positions=positions,
                prices=prices,
                books=books,
                changed=changed,
                outcome=outcome,
                now=now,
            )
            marks: list[tuple[UUID, Decimal, Decimal]] = []
            for position in positions:
                price = prices[position.symbol]
                # An old bar still happened: its exits fire, once, even when it is stale.
                if await self._exit(
                    conn, position=position, price=price, books=books, outcome=outcome, now=now
                ):
                    changed.add(position.llm_id)
                    continue
                if position.symbol not in fresh:
                    continue
                marks.append(
                    (
                        position.id,
                        price.mark_price,
                        accounting.unrealized_pnl(
                            position.side, position.entry_price, price.mark_price, position.quantity
                        ),
                    )
                )
            await sql.positions.mark_positions(conn, marks)
            await _save_marked_books(conn, books, now)
            for llm_id in sorted(changed):
                await _announce_account(conn, llm_id, f"account:tick:{tick.tick_id}:{llm_id}", now)
            outcome.agents = agents
        outcome.stale_symbols = sorted(set(symbols) - fresh)
        await sql.equity.snapshot_equity(conn, tick.at, f"tick:{tick.tick_id}")
        return outcome

    async def _fund(
        self,
        conn: asyncpg.Connection,
        *,
        tick: MarketTick,
        positions: list[PositionRow],
        prices: Mapping[str, TickPrice],
        books: dict[str, Book],
        changed: set[str],
        outcome: TickOutcome,
        now: datetime,
    ) -> None:
        latest = funding_time(tick.at)
        due = [p for p in positions if p.opened_at <= latest]
        if not due:
            return
        rates = await sql.cycles.latest_funding_rates(conn, sorted({p.symbol for p in due}))
        last_paid = await sql.trades.last_funding_times(conn, [p.id for p in due])
        for position in due:
            rate = rates.get(position.symbol)
            if rate is None:
                continue
            paid = last_paid.get(position.id)
            # After a gap (ticks stopped, the ledger was down) every funding time missed
            # since the opening or the last payment is charged, each once.
            since = position.opened_at if paid is None else paid + timedelta(hours=FUNDING_HOURS)
            mark = prices[position.symbol].mark_price
            for when in funding_times(since, tick.at):
                amount = accounting.funding_payment(position.side, mark, position.quantity, rate)
                # An account never goes below zero: it pays at most what its balance holds.
                amount = min(amount, books[position.llm_id].balance)
                await sql.trades.insert_funding(
                    conn,
                    position,
                    funding_time=when,
                    mark_price=mark,
                    funding_rate=rate,
                    amount=amount,
                    now=now,
                )
                books[position.llm_id] = books[position.llm_id].funded(amount)
                changed.add(position.llm_id)
                outcome.funding_payments += 1

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
            closing = accounting.close_position(
                position.side,
                position.entry_price,
                position.quantity,
                position.margin,
                fired.price,
                fee_rate=self._fee_rate,
            )
            status = PositionStatus.CLOSED
        books[position.llm_id] = await close_and_announce(
            conn,
            position,
            closing,
            books[position.llm_id],
            status=status,
            exit_reason=fired.reason,
            cycle_id=None,
            now=now,
        )
        outcome.exits[fired.reason] = outcome.exits.get(fired.reason, 0) + 1
        return True
