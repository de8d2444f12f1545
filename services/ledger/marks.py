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

A run of consecutive ticks and snapshots (a replay publishes a cycle period's bars with
the next cycle's snapshot) is priced in memory one step after the other, on the books
read and locked once, and written set-wise: one statement per kind of effect for the run
(marks, positions, books, equity snapshots, funding payments), not a dozen per tick. An
exit writes its position, trade and event as it fires, and an account's event is written
for the step that changed it. A snapshot's step only liquidates (no fee): the positions
its mark went through, a gap no tick covered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from uuid import UUID

import asyncpg

from services.common import subjects
from services.common.contracts import AccountEvent, MarketTick, PositionStatus
from services.common.funding import FUNDING_INTERVAL, funding_times, last_funding_time
from services.ledger import accounting, sql
from services.ledger.accounting import Book
from services.ledger.closing import close_and_announce, closing_at, liquidate
from services.ledger.outbox import enqueue
from services.ledger.sql.accounts import AccountRow
from services.ledger.sql.positions import PositionRow
from services.ledger.sql.trades import FundingPayment
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


@dataclass(frozen=True)
class SnapshotMarks:
    """A cycle's snapshot, stored already, to reprice the books at in a run: its mark
    prices, their market time ``at`` and the books' time ``now``."""

    cycle_id: str
    marks: Mapping[str, Decimal]
    at: datetime
    now: datetime

    def step(self) -> _Step:
        return _Step(
            marks=self.marks,
            at=self.at,
            now=self.now,
            event_prefix=f"account:mark:{self.cycle_id}",
            equity_source=f"cycle:{self.cycle_id}",
            cycle_id=self.cycle_id,
        )


@dataclass(frozen=True)
class _Step:
    """One repricing: a tick (funding, then its bar's exits) or a snapshot (liquidations
    at the mark)."""

    marks: Mapping[str, Decimal]
    at: datetime  # the marks' market time
    now: datetime  # the books' time
    event_prefix: str  # an account's event: ``{event_prefix}:{agent}``
    equity_source: str
    tick: MarketTick | None = None
    cycle_id: str | None = None


@dataclass
class _Stepped:
    """What one step did."""

    agents: list[str]
    fresh: set[str]
    exits: dict[str, int] = field(default_factory=dict)
    funding_payments: int = 0


class _Books:
    """The accounts and open positions a run of steps reprices, in memory while it runs.

    Read once: every account (for the equity snapshots), the accounts holding a position
    on the run's symbols (locked, accounts before positions as a verdict takes them: no
    deadlock) and all their open positions (locked), the symbols' latest mark times.
    No verdict is applied inside a run, so no position opens while it runs.
    """

    def __init__(
        self,
        accounts: list[AccountRow],
        held: dict[str, Book],
        positions: list[PositionRow],
        marked_at: dict[str, datetime],
        fee_rate: Decimal,
    ) -> None:
        self.accounts = accounts
        self.held = held
        self.positions = {p.id: p for p in positions}
        self.marked_at = marked_at
        self.fee_rate = fee_rate
        self.new_marks: dict[str, tuple[datetime, Decimal]] = {}
        self.moved: set[UUID] = set()
        self.equity: list[tuple[str, datetime, str, Book]] = []
        self.funding: list[FundingPayment] = []
        self.last_paid: dict[UUID, datetime] | None = None
        self.rates: dict[str, Decimal] | None = None
        self.saved_at: dict[str, datetime] = {}  # an account's time: the last step marking it

    @classmethod
    async def load(
        cls, conn: asyncpg.Connection, symbols: Sequence[str], fee_rate: Decimal
    ) -> _Books:
        books = await sql.runs.load_books(conn, symbols)
        return cls(books.accounts, books.held, books.positions, books.marked_at, fee_rate)

    # ------------------------------------------------------------ one step

    async def step(self, conn: asyncpg.Connection, step: _Step) -> _Stepped:
        """Apply ``step``: advance its symbols' marks, fund, fire exits, mark the rest."""
        fresh = self._advance(step)
        on_step = [p for p in self.positions.values() if p.symbol in step.marks]
        done = _Stepped(agents=sorted({p.agent_id for p in on_step}), fresh=fresh)
        changed: set[str] = set()
        if step.tick is not None:
            changed |= await self._fund(conn, step, step.tick, on_step, done)
        for p in on_step:
            if await self._exit(conn, step, p, p.symbol in fresh, done):
                changed.add(p.agent_id)
            elif p.symbol in fresh:
                mark = step.marks[p.symbol]
                pnl = accounting.unrealized_pnl(p.side, p.entry_price, mark, p.quantity)
                self.positions[p.id] = replace(p, current_price=mark, unrealized_pnl=pnl)
                self.moved.add(p.id)
        for agent in done.agents:
            unrealized = sum(
                (p.unrealized_pnl for p in self.positions.values() if p.agent_id == agent),
                Decimal(0),
            )
            self.held[agent] = self.held[agent].marked(unrealized)
            self.saved_at[agent] = step.now
        for account in self.accounts:
            book = self.held.get(account.agent_id, account.book)
            self.equity.append((account.agent_id, step.at, step.equity_source, book))
        for agent in sorted(changed):
            await self._announce(conn, agent, f"{step.event_prefix}:{agent}", step.now)
        return done

    def _advance(self, step: _Step) -> set[str]:
        """The step's symbols whose mark moves forward (or stays at the same time)."""
        fresh = set()
        for symbol, mark in step.marks.items():
            latest = self.marked_at.get(symbol)
            if latest is None or latest <= step.at:
                fresh.add(symbol)
                self.marked_at[symbol] = step.at
                self.new_marks[symbol] = (step.at, mark)
        return fresh

    async def _exit(
        self, conn: asyncpg.Connection, step: _Step, p: PositionRow, fresh: bool, done: _Stepped
    ) -> bool:
        """Close ``p`` if the step fires its exit: a tick's bar (even a stale one: an old
        bar still happened), a snapshot's mark through its liquidation price (fresh only)."""
        book = self.held[p.agent_id]
        tick = step.tick
        if tick is None:
            if not fresh or not accounting.is_liquidated(
                p.side, p.liquidation_price, step.marks[p.symbol]
            ):
                return False
            closed = await liquidate(conn, p, book, cycle_id=step.cycle_id, now=step.now)
            reason = accounting.EXIT_LIQUIDATION
        else:
            price = next(t for t in tick.prices if t.symbol == p.symbol)
            fired = accounting.triggered_exit(
                p.side,
                price.high,
                price.low,
                liquidation=p.liquidation_price,
                stop_loss=p.stop_loss,
                take_profit=p.take_profit,
            )
            if fired is None:
                return False
            if fired.reason == accounting.EXIT_LIQUIDATION:
                closing = accounting.liquidation_closing(p.margin, fired.price)
                status = PositionStatus.LIQUIDATED
            else:
                closing = closing_at(p, fired.price, self.fee_rate)
                status = PositionStatus.CLOSED
            closed = await close_and_announce(
                conn,
                p,
                closing,
                book,
                status=status,
                exit_reason=fired.reason,
                cycle_id=None,
                now=step.now,
            )
            reason = fired.reason
        self.held[p.agent_id] = closed.book
        await sql.outbox.insert(conn, closed.event)
        del self.positions[p.id]
        self.moved.discard(p.id)
        done.exits[reason] = done.exits.get(reason, 0) + 1
        return True

    async def _fund(
        self,
        conn: asyncpg.Connection,
        step: _Step,
        tick: MarketTick,
        positions: list[PositionRow],
        done: _Stepped,
    ) -> set[str]:
        """Charge the funding due at this tick; the agents whose books it changed."""
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
            # Live: every 00:00, 08:00 and 16:00 UTC at the latest rate the market announced
            # (no snapshot comes inside a run of ticks: read once for the run).
            last = last_funding_time(tick.at)
            due = [p for p in positions if p.opened_at <= last]
            if due and self.rates is None:
                symbols = sorted({p.symbol for p in self.positions.values()})
                self.rates = await sql.cycles.latest_funding_rates(conn, symbols)
            rates = self.rates or {}
            latest = {}
        if not due:
            return set()
        if self.last_paid is None:
            self.last_paid = await sql.trades.last_funding_times(conn, list(self.positions))
        changed: set[str] = set()
        for position in due:
            rate = rates.get(position.symbol)
            if rate is None:
                continue
            paid = self.last_paid.get(position.id)
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
                book = self.held[position.agent_id]
                amount = accounting.funding_payment(position.side, mark, position.quantity, rate)
                # An account never goes below zero: it pays at most what its balance holds.
                amount = min(amount, book.balance)
                self.funding.append(FundingPayment(position, when, mark, rate, amount, step.now))
                self.last_paid[position.id] = when
                self.held[position.agent_id] = book.funded(amount)
                changed.add(position.agent_id)
                done.funding_payments += 1
        return changed

    async def _announce(
        self, conn: asyncpg.Connection, agent_id: str, event_id: str, now: datetime
    ) -> None:
        row = next(a for a in self.accounts if a.agent_id == agent_id).with_book(
            self.held[agent_id]
        )
        await enqueue(
            conn,
            subjects.ledger_account(agent_id),
            event_id,
            AccountEvent(event_id=event_id, account=account_view(row), at=now),
        )

    # ------------------------------------------------------------ the run's writes

    async def save(self, conn: asyncpg.Connection) -> None:
        """Write what the run did, every kind of effect in one statement."""
        await sql.runs.save_effects(
            conn,
            sql.runs.RunEffects(
                marks=self.new_marks,
                positions=[
                    (p.id, p.current_price, p.unrealized_pnl)
                    for p in self.positions.values()
                    if p.id in self.moved
                ],
                funding=self.funding,
                books={agent: (self.held[agent], at) for agent, at in self.saved_at.items()},
                equity=self.equity,
            ),
        )


async def _run(
    conn: asyncpg.Connection, steps: Sequence[_Step], *, fee_rate: Decimal
) -> list[_Stepped]:
    symbols = sorted({s for step in steps for s in step.marks})
    books = await _Books.load(conn, symbols, fee_rate)
    done = [await books.step(conn, step) for step in steps]
    await books.save(conn)
    return done


def _marked(done: _Stepped) -> MarkOutcome:
    return MarkOutcome(
        agents=done.agents, liquidations=done.exits.get(accounting.EXIT_LIQUIDATION, 0)
    )


class TickProcessor:
    """Applies a run of consecutive ticks and snapshots inside the caller's transaction."""

    def __init__(self, taker_fee_rate: Decimal) -> None:
        self._fee_rate = taker_fee_rate

    async def apply(
        self, conn: asyncpg.Connection, ticks: Sequence[MarketTick], now: datetime
    ) -> list[TickOutcome]:
        """A run of ticks alone: :meth:`apply_run`."""
        return [o for o in await self.apply_run(conn, ticks, now) if isinstance(o, TickOutcome)]

    async def apply_run(
        self, conn: asyncpg.Connection, run: Sequence[MarketTick | SnapshotMarks], now: datetime
    ) -> list[TickOutcome | MarkOutcome]:
        """One outcome per tick or snapshot, in order; ``now`` is the books' time of a live
        tick (a replay's is its own time)."""
        # The tick's own id, not only the message id: a copy republished under another
        # Nats-Msg-Id must not snapshot equity again nor re-mark at its (older) prices.
        ticks = [item for item in run if isinstance(item, MarketTick)]
        times = {id(tick): tick.at if tick.data_time else now for tick in ticks}
        claimed = (
            await sql.cycles.claim_ticks(conn, [(t.tick_id, times[id(t)]) for t in ticks])
            if ticks
            else set()
        )
        steps: list[_Step] = []
        kept: set[int] = set()
        for item in run:
            if isinstance(item, SnapshotMarks):
                steps.append(item.step())
                kept.add(id(item))
                continue
            if item.tick_id not in claimed:
                continue
            claimed.discard(item.tick_id)  # a second copy in this run is one too
            kept.add(id(item))
            steps.append(
                _Step(
                    marks={p.symbol: p.mark_price for p in item.prices},
                    at=item.at,
                    now=times[id(item)],
                    event_prefix=f"account:tick:{item.tick_id}",
                    equity_source=f"tick:{item.tick_id}",
                    tick=item,
                )
            )
        done = iter(await _run(conn, steps, fee_rate=self._fee_rate) if steps else [])
        outcomes: list[TickOutcome | MarkOutcome] = []
        for item in run:
            if id(item) not in kept:
                outcomes.append(TickOutcome(duplicate=True))
                continue
            stepped = next(done)
            if isinstance(item, SnapshotMarks):
                outcomes.append(_marked(stepped))
                continue
            outcomes.append(
                TickOutcome(
                    agents=stepped.agents,
                    stale_symbols=sorted({p.symbol for p in item.prices} - stepped.fresh),
                    exits=stepped.exits,
                    funding_payments=stepped.funding_payments,
                )
            )
        return outcomes
