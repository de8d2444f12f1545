"""Applying verdicts inside the books' transaction: opens, closes, rejections, events.

The ledger executes what risk approved at the cycle's snapshot price, but judges every
approved action again with the trading rules against its own books (a verdict forged on
the bus, or approved against a portfolio that has changed since, cannot break a limit),
and refuses (recording it, with a ``ledger_`` reason code) what it cannot apply.

A verdict always reaches the books: one for a cycle that is over is recorded with its
trades refused; one whose cycle or snapshot never arrived (the ledger has read every
announcement there is) is recorded with its trades refused for that reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid5

import asyncpg

from services.common import subjects
from services.common.bus import PermanentError
from services.common.contracts import (
    AccountEvent,
    Action,
    ActionResult,
    CycleCompleted,
    Portfolio,
    PositionEvent,
    PositionSide,
    PositionStatus,
    TradeAction,
    Verdict,
)
from services.common.instruments import InstrumentTable
from services.common.rules import LIMIT_RULES, ActionContext, Prior, judge
from services.common.settings import TradingLimits
from services.ledger import accounting, sql
from services.ledger.accounting import Book
from services.ledger.closing import close_and_announce, closing_at, liquidate
from services.ledger.cycles import complete_locked
from services.ledger.outbox import outbox_row
from services.ledger.sql.accounts import AccountRow
from services.ledger.sql.cycles import CycleRow
from services.ledger.sql.decisions import Booked, BookSave
from services.ledger.sql.outbox import OutboxRow
from services.ledger.sql.positions import PositionRow
from services.ledger.views import account_view, position_view

CYCLE_CLOSED = "ledger_cycle_closed"
UNKNOWN_CYCLE = "ledger_unknown_cycle"
RECHECK_PREFIX = "ledger_"
INSUFFICIENT_BALANCE = "ledger_insufficient_balance"
POSITION_OPEN = "ledger_position_already_open"
NOTHING_TO_CLOSE = "ledger_no_open_position"
NO_PRICE = "ledger_no_price"
INVALID_ACTION = "ledger_invalid_action"
EXIT_DECISION = "decision"
# Named after the decision and the action that opened it, a position's id is the same in
# every replay of the same data (it is in the decision chain, with the action's result).
POSITION_IDS = UUID("e5b1a06b-ad1e-4059-9817-0620b6303e0b")


def position_id(decision_id: str, index: int) -> UUID:
    return uuid5(POSITION_IDS, f"{decision_id}:{index}")


def _one_per_agent(verdicts: Sequence[Verdict]) -> list[Verdict]:
    """The longest run of ``verdicts`` from the first with no agent, and no decision,
    twice."""
    agents: set[str] = set()
    decisions: set[str] = set()
    taken = []
    for verdict in verdicts:
        decision = verdict.decision
        if decision.agent_id in agents or decision.decision_id in decisions:
            break
        agents.add(decision.agent_id)
        decisions.add(decision.decision_id)
        taken.append(verdict)
    return taken


class _Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Applied:
    """What one verdict did, for metrics after the commit."""

    duplicate: bool = False
    opened: int = 0
    closed: int = 0
    rejection_codes: list[str] = field(default_factory=list)
    cycle_completed: CycleCompleted | None = None


@dataclass
class _Run:
    """The state threaded through one verdict's actions."""

    verdict: Verdict
    cycle: CycleRow
    prices: dict[str, Decimal]
    account: AccountRow  # as read before the verdict
    book: Book
    portfolio: Portfolio
    now: datetime
    # The agent's open positions by symbol as its actions leave them (its account is
    # locked: nothing else changes them meanwhile).
    open: dict[str, PositionRow]
    applied: Applied = field(default_factory=Applied)
    results: list[dict[str, Any]] = field(default_factory=list)
    earlier: list[Prior] = field(default_factory=list)
    events: list[OutboxRow] = field(default_factory=list)  # its positions', in order


class VerdictApplier:
    def __init__(
        self,
        taker_fee_rate: Decimal,
        instruments: InstrumentTable,
        limits: TradingLimits,
        symbols: frozenset[str],
    ) -> None:
        self._fee_rate = taker_fee_rate
        self._instruments = instruments
        self._limits = limits
        self._symbols = symbols

    async def apply(
        self, conn: asyncpg.Connection, verdicts: Sequence[Verdict], now: datetime
    ) -> list[Applied | PermanentError]:
        """Apply ``verdicts`` in order in the caller's transaction: for each, what it did
        (its decision already stored: a duplicate, no-op) or why it is refused for good,
        found before it wrote anything (its agent has no account).

        Verdicts of different agents are applied together, in rounds: their inputs read in
        one statement; their decisions, books, equity snapshots and events (each
        decision's position events, then its account event, decision after decision)
        written in one more. A round ends before an agent's second verdict (or a second
        copy of a decision) and after a verdict that completes its cycle, so every
        verdict reads the books as the verdicts before it left them: the same as applied
        one by one (tests/ledger/test_verdict_rounds.py).

        Each cycle and snapshot came before its verdicts on the bus (see :mod:`intake`):
        when either is missing it never will come, and the verdict's trades are refused
        for it.
        """
        outcomes: list[Applied | PermanentError] = []
        while len(outcomes) < len(verdicts):
            outcomes += await self._round(conn, verdicts[len(outcomes) :], now)
        return outcomes

    async def _round(
        self, conn: asyncpg.Connection, verdicts: Sequence[Verdict], now: datetime
    ) -> list[Applied | PermanentError]:
        """Apply a round of ``verdicts`` (at least the first); what each applied did."""
        taken = _one_per_agent(verdicts)
        keys = [
            sql.positions.VerdictKey(d.agent_id, d.cycle_id, d.decision_id)
            for d in (v.decision for v in taken)
        ]
        outcomes: list[Applied | PermanentError] = []
        runs: list[_Run] = []
        decided: Counter[str] = Counter()  # per cycle, its expected agents' in this round
        completing: tuple[_Run, int] | None = None
        inputs = await sql.positions.verdict_inputs(conn, keys)
        for verdict, found in zip(taken, inputs, strict=True):
            agent = verdict.decision.agent_id
            if found is None:
                outcomes.append(PermanentError(f"agent {agent!r} has no account in the ledger"))
                continue
            if found.decided:
                outcomes.append(Applied(duplicate=True))
                continue
            run = await self._run(conn, verdict, found, now)
            runs.append(run)
            outcomes.append(run.applied)
            cycle = run.cycle
            if cycle.running:
                # This decision is one more of the cycle's (when its agent is expected).
                decided[cycle.cycle_id] += int(agent in cycle.expected_agents)
                count = found.cycle_decisions + decided[cycle.cycle_id]
                if count >= len(set(cycle.expected_agents)):
                    completing = (run, count)
                    break
        await self._store(conn, runs)
        if completing is not None:
            run, count = completing
            run.applied.cycle_completed = await complete_locked(
                conn, run.cycle, run.now, deadline_passed=False, decided=count
            )
        return outcomes

    async def _run(
        self,
        conn: asyncpg.Connection,
        verdict: Verdict,
        inputs: sql.positions.VerdictInputs,
        now: datetime,
    ) -> _Run:
        """Apply the verdict's actions (their own rows written as they go)."""
        decision = verdict.decision
        cycle = inputs.cycle or CycleRow.unknown(decision.cycle_id)
        if cycle.data_time:
            now = verdict.decided_at  # risk's "now" in a replay: the snapshot's time
        account = inputs.account
        portfolio = Portfolio(
            account=account_view(account),
            positions=tuple(position_view(p) for p in inputs.positions),
        )
        held = {p.symbol: p for p in inputs.positions}
        run = _Run(verdict, cycle, inputs.prices, account, account.book, portfolio, now, held)
        for result in sorted(verdict.results, key=lambda r: r.index):
            await self._one(conn, run, result)
        return run

    @staticmethod
    async def _store(conn: asyncpg.Connection, runs: Sequence[_Run]) -> None:
        """The round's decisions, its books, their equity snapshots and account events."""
        decisions = [
            # A replay's decisions join the chain when their cycle completes, in agent
            # order.
            Booked(r.verdict, r.results, r.now, linked=not (r.cycle.data_time and r.cycle.running))
            for r in runs
        ]
        books = []
        for run in runs:
            decision_id = run.verdict.decision.decision_id
            event_id = f"account:{decision_id}"
            account = account_view(run.account.with_book(run.book))
            event = AccountEvent(event_id=event_id, account=account, at=run.now)
            books.append(
                BookSave(
                    run.account.agent_id,
                    run.book,
                    run.now,
                    equity_source=f"decision:{decision_id}",
                    events=(
                        *run.events,
                        outbox_row(subjects.ledger_account(account.agent_id), event_id, event),
                    ),
                )
            )
        await sql.decisions.store_booked(conn, decisions, books)

    async def _one(self, conn: asyncpg.Connection, run: _Run, result: ActionResult) -> None:
        action = result.action
        entry: dict[str, Any] = {
            "index": result.index,
            "action": action.action.value,
            "symbol": action.symbol,
            "approved": result.approved,
        }
        run.results.append(entry)
        if not result.approved:
            reasons = [{"code": r.code, "message": r.message} for r in result.reasons] or [
                {"code": "risk_rejected", "message": "rejected by risk"}
            ]
            run.earlier.append(Prior(action, approved=False))
            await self._reject(conn, run, entry, action, reasons)
            return
        if action.action is TradeAction.HOLD:
            run.earlier.append(Prior(action, approved=True))
            entry["outcome"] = "held"
            return
        refusals = self._refusals(run, action)
        try:
            if refusals:
                raise _Refused(refusals[0]["code"], "; ".join(r["message"] for r in refusals))
            if action.action is TradeAction.CLOSE:
                await self._close(conn, run, entry, action)
            else:
                await self._open(conn, run, entry, action)
        except _Refused as refused:
            run.earlier.append(Prior(action, approved=False))
            reasons = refusals or [{"code": refused.code, "message": refused.message}]
            await self._reject(conn, run, entry, action, reasons)
            return
        run.earlier.append(Prior(action, approved=True))

    def _refusals(self, run: _Run, action: Action) -> list[dict[str, str]]:
        """Why the ledger will not apply an approved action: its cycle, then every limit
        judged again on the ledger's own books (all of them, so a forged approval shows
        each breach)."""
        found: list[dict[str, str]] = []
        cycle = run.cycle
        if cycle.status == CycleRow.UNKNOWN:
            found.append(
                {
                    "code": UNKNOWN_CYCLE,
                    "message": f"cycle {cycle.cycle_id} was never announced by the market",
                }
            )
        elif not cycle.running:
            found.append(
                {
                    "code": CYCLE_CLOSED,
                    "message": f"cycle {cycle.cycle_id} is already {cycle.status}; "
                    "its prices have moved on",
                }
            )
        context = ActionContext(
            action=action,
            portfolio=run.portfolio,
            limits=self._limits,
            symbols=self._symbols,
            earlier=tuple(run.earlier),
            prices=run.prices,
            instruments=self._instruments,
        )
        found += [
            {
                "code": RECHECK_PREFIX + reason.code,
                "message": f"refused by the ledger although approved: {reason.message}",
            }
            for reason in judge(context, LIMIT_RULES)
        ]
        return found

    async def _open(
        self, conn: asyncpg.Connection, run: _Run, entry: dict[str, Any], action: Action
    ) -> None:
        agent = run.verdict.decision.agent_id
        if action.symbol is None or action.margin_usd is None or action.leverage is None:
            raise _Refused(INVALID_ACTION, "an open needs a symbol, margin_usd and leverage")
        price = self._price(run, action.symbol)
        if action.symbol in run.open:
            raise _Refused(POSITION_OPEN, f"a {action.symbol} position is already open")
        side = PositionSide.LONG if action.action is TradeAction.BUY else PositionSide.SHORT
        instrument = self._instruments[action.symbol]
        try:
            opening = accounting.open_position(
                side,
                price,
                action.margin_usd,
                action.leverage,
                fee_rate=self._fee_rate,
                maintenance_margin_rate=instrument.maintenance_margin_rate,
                maintenance_amount=instrument.maintenance_amount,
                quantity_step=instrument.step_size,
            )
        except accounting.AccountingError as exc:
            raise _Refused(INVALID_ACTION, str(exc)) from exc
        if not run.book.can_afford(opening):
            raise _Refused(
                INSUFFICIENT_BALANCE,
                f"balance {run.book.balance} does not cover margin {opening.margin} "
                f"plus fee {opening.fee}",
            )
        position = await sql.positions.open_position(
            conn,
            position_id(run.verdict.decision.decision_id, entry["index"]),
            agent,
            action.symbol,
            opening,
            stop_loss=action.stop_loss,
            take_profit=action.take_profit,
            cycle_id=run.cycle.cycle_id,
            now=run.now,
        )
        run.open[action.symbol] = position
        run.book = run.book.opened(opening)
        event_id = f"position:{position.id}:opened"
        run.events.append(
            outbox_row(
                subjects.ledger_position(agent),
                event_id,
                PositionEvent(
                    event_id=event_id,
                    kind="opened",
                    cycle_id=run.cycle.cycle_id,
                    position=position_view(position),
                    fee=opening.fee,
                    at=run.now,
                ),
            )
        )
        entry.update(outcome="opened", position_id=str(position.id))
        run.applied.opened += 1

    async def _close(
        self, conn: asyncpg.Connection, run: _Run, entry: dict[str, Any], action: Action
    ) -> None:
        if action.symbol is None:
            raise _Refused(INVALID_ACTION, "a close needs a symbol")
        position = run.open.get(action.symbol)
        if position is None:
            raise _Refused(NOTHING_TO_CLOSE, f"no open {action.symbol} position to close")
        price = self._price(run, action.symbol)
        cycle_id = run.cycle.cycle_id
        if accounting.is_liquidated(position.side, position.liquidation_price, price):
            # The price gapped through the liquidation price since the last mark: the
            # position was liquidated there, and a close cannot lose more than its margin.
            closed = await liquidate(conn, position, run.book, cycle_id=cycle_id, now=run.now)
            exit_reason = accounting.EXIT_LIQUIDATION
        else:
            closing = closing_at(position, price, self._fee_rate)
            closed = await close_and_announce(
                conn,
                position,
                closing,
                run.book,
                status=PositionStatus.CLOSED,
                exit_reason=EXIT_DECISION,
                cycle_id=cycle_id,
                now=run.now,
            )
            exit_reason = EXIT_DECISION
        del run.open[action.symbol]
        run.book = closed.book
        run.events.append(closed.event)
        entry.update(outcome="closed", exit_reason=exit_reason, position_id=str(position.id))
        run.applied.closed += 1

    @staticmethod
    def _price(run: _Run, symbol: str) -> Decimal:
        price = run.prices.get(symbol)
        if price is None:
            raise _Refused(NO_PRICE, f"cycle {run.cycle.cycle_id} has no price for {symbol}")
        return price

    @staticmethod
    async def _reject(
        conn: asyncpg.Connection,
        run: _Run,
        entry: dict[str, Any],
        action: Action,
        reasons: list[dict[str, str]],
    ) -> None:
        decision = run.verdict.decision
        codes = [r["code"] for r in reasons]
        message = "; ".join(r["message"] for r in reasons)
        await sql.decisions.insert_rejection(
            conn,
            agent_id=decision.agent_id,
            symbol=action.symbol,
            decision=action.action.value,
            reasoning=decision.reasoning,
            rejection_reason=message,
            confidence=action.confidence,
            decision_id=decision.decision_id,
            cycle_id=decision.cycle_id,
            reason_codes=codes,
            now=run.now,
        )
        entry.update(outcome="rejected", reason_codes=codes, reasons=reasons)
        run.applied.rejection_codes.extend(codes)
