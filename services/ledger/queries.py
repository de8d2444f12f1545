"""Request-reply answers (read-only): portfolio, accounts, leaderboard, lists, stats, verify."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import asyncpg

from services.common.bus import NotFound, TransientError
from services.common.contracts import (
    Accounts,
    AccountsQuery,
    Action,
    ActionResult,
    AgentStats,
    Decision,
    DecisionRecord,
    Decisions,
    DecisionsQuery,
    EquityQuery,
    Leaderboard,
    LeaderboardEntry,
    LeaderboardQuery,
    Page,
    Portfolio,
    PortfolioQuery,
    Portfolios,
    PortfoliosQuery,
    Positions,
    PositionSide,
    PositionsQuery,
    Reason,
    Stats,
    StatsQuery,
    Trades,
    TradesQuery,
    TradeView,
    VerifyQuery,
    VerifyReport,
)
from services.ledger import accounting, curve_store, series, sql, stats
from services.ledger.booked import BookedCycles
from services.ledger.curve import Curve
from services.ledger.database import acquire
from services.ledger.live_evidence import AgentEvidence, LiveEvidence
from services.ledger.sql.accounts import AccountRow
from services.ledger.verify import examine
from services.ledger.views import account_view, position_view

ZERO = Decimal(0)
# Under the askers' request timeout (2 s by default): they hear "unavailable" and ask again.
BOOKED_WAIT_SECONDS = 1.5
BOOKED_FIRST_WAIT_SECONDS = 0.25
# Parts of an equity answer read at once (the machine's cores, at least two on any host).
EQUITY_PARTS = 2


@dataclass(frozen=True)
class Extras:
    """Per-agent figures that live outside llm_accounts (zero when absent)."""

    llm_cost: Mapping[str, Decimal] = field(default_factory=dict)
    parse_failures: Mapping[str, int] = field(default_factory=dict)
    rejections: Mapping[str, int] = field(default_factory=dict)


def standings(
    rows: Sequence[AccountRow], extras: Extras | None = None
) -> tuple[LeaderboardEntry, ...]:
    """Rank by equity, highest first, then by total PnL (SPEC's order), then by agent id;
    one rank each, as the view ``llm_leaderboard`` ranks them."""
    extra = extras or Extras()
    ranked = sorted(rows, key=lambda r: (-r.book.equity, -r.total_pnl, r.agent_id))
    return tuple(
        LeaderboardEntry(
            rank=rank,
            **_figures(row, extra),
            open_positions=row.open_positions,
            rejections=extra.rejections.get(row.agent_id, 0),
        )
        for rank, row in enumerate(ranked, start=1)
    )


def _figures(row: AccountRow, extras: Extras) -> dict[str, Any]:
    """The figures the leaderboard and the stats both show of an account."""
    cost = extras.llm_cost.get(row.agent_id, ZERO)
    return {
        "agent_id": row.agent_id,
        "display_name": row.display_name,
        "equity": row.book.equity,
        "return_pct": accounting.return_pct(row.book.equity, row.initial_balance),
        "realized_pnl": row.realized_pnl,
        "unrealized_pnl": row.unrealized_pnl,
        "total_fees": row.total_fees,
        "total_funding": row.total_funding,
        "llm_cost_usd": cost,
        "net_return_pct": stats.net_return_pct(row.book.equity, cost, row.initial_balance),
        "total_trades": row.total_trades,
        "win_rate": accounting.win_rate(row.winning_trades, row.losing_trades),
        "parse_failures": extras.parse_failures.get(row.agent_id, 0),
    }


async def _extras(conn: asyncpg.Connection) -> Extras:
    return Extras(
        llm_cost=await sql.decisions.llm_costs(conn),
        parse_failures=await sql.decisions.parse_failures(conn),
        rejections=await sql.decisions.rejection_counts(conn),
    )


# A trade's fields read from the column of the same name.
_TRADE_COLUMNS = (
    "cycle_id", "symbol", "action", "entry_price", "exit_price", "quantity", "realized_pnl",
    "pnl_percentage", "fees", "exit_reason", "executed_at", "closed_at",
)  # fmt: skip


def _trade(record: asyncpg.Record) -> TradeView:
    return TradeView(
        trade_id=str(record["id"]),
        agent_id=record["llm_id"],
        position_id=str(record["position_id"]),
        side=PositionSide(record["side"]),
        **{c: record[c] for c in _TRADE_COLUMNS},
    )


# A decision's fields read from the column of the same name (rows without the whole one).
_DECISION_COLUMNS = (
    "decision_id", "cycle_id", "decided_at", "reasoning", "model", "prompt_sha256", "error",
)  # fmt: skip


def decision_record(record: asyncpg.Record) -> DecisionRecord:
    """A stored decision with one result per action: risk's verdict, or the ledger's refusal."""
    actions = [Action.model_validate(a) for a in json.loads(record["actions"])]
    if record["decision"] is not None:
        decision = Decision.model_validate(json.loads(record["decision"]))
    else:  # rows stored before the whole decision was kept
        decision = Decision(
            agent_id=record["llm_id"],
            decision_deadline=record["decided_at"],
            actions=tuple(actions),
            **{c: record[c] for c in _DECISION_COLUMNS},
        )
    results: list[ActionResult] = []
    for entry in json.loads(record["results"]):
        index = int(entry["index"])
        reasons: list[dict[str, Any]] = entry.get("reasons") or [
            {"code": code, "message": code} for code in entry.get("reason_codes", [])
        ]
        results.append(
            ActionResult(
                index=index,
                action=decision.actions[index],
                approved=entry.get("outcome") != "rejected",
                reasons=tuple(Reason(code=r["code"], message=r["message"]) for r in reasons),
            )
        )
    return DecisionRecord(
        decision=decision, results=tuple(results), applied_at=record["applied_at"]
    )


# How many rows a list holds, and one page of it (of one agent or all).
_Count = Callable[[asyncpg.Connection, str | None], Awaitable[int]]


class _Read(Protocol):
    async def __call__(
        self, conn: asyncpg.Connection, agent_id: str | None, *, limit: int, offset: int
    ) -> list[asyncpg.Record]: ...


class LedgerQueries:
    def __init__(
        self,
        pool: asyncpg.Pool,
        booked: BookedCycles | None = None,
        evidence: LiveEvidence | None = None,
    ) -> None:
        """``booked``: the cycles the books have taken (None: every query answers at once);
        ``evidence``: the latest return and alpha intervals (None: stats show none)."""
        self._pool = pool
        self._booked = booked
        self._evidence = evidence

    @contextlib.asynccontextmanager
    async def _snapshot(self, agent_id: str | None = None) -> AsyncIterator[asyncpg.Connection]:
        """A read-only, repeatable-read view, so every part of one answer agrees; with
        ``agent_id``, NotFound unless that agent has an account."""
        async with (
            acquire(self._pool) as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            # A plan for the values asked, not a generic one: ``$1 IS NULL OR llm_id = $1``
            # would otherwise read every agent's rows.
            await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
            if agent_id is not None and await sql.accounts.account(conn, agent_id) is None:
                raise NotFound(f"no account for agent {agent_id!r}")
            yield conn

    async def portfolio(self, query: PortfolioQuery) -> Portfolio:
        # Asked by the gateway and by risk (for a decision that does not carry the
        # portfolio it was made on): one statement, no transaction around it.
        asked = PortfoliosQuery(agent_ids=(query.agent_id,), cycle_id=query.cycle_id)
        found = (await self.portfolios(asked)).portfolios
        if not found:
            raise NotFound(f"no account for agent {query.agent_id!r}")
        return found[0]

    async def portfolios(self, query: PortfoliosQuery) -> Portfolios:
        """Asked for every cycle by each agent process, for all the agents it hosts."""
        if query.cycle_id is not None:
            await self._until_booked(query.cycle_id)
        async with acquire(self._pool) as conn:
            found = await sql.positions.portfolios(conn, query.agent_ids)
        return Portfolios(
            portfolios=tuple(
                Portfolio(
                    account=account_view(row),
                    positions=tuple(position_view(p) for p in positions),
                )
                for row, positions in (found[a] for a in query.agent_ids if a in found)
            )
        )

    async def _until_booked(self, cycle_id: str) -> None:
        """Until ``cycle_id``'s snapshot is in the books; TransientError ("unavailable",
        the asker tries again) if it does not come within ``BOOKED_WAIT_SECONDS``."""
        if self._booked is None or cycle_id in self._booked:
            return
        # Usually the books take the snapshot within milliseconds of the question.
        if await self._booked.wait(cycle_id, BOOKED_FIRST_WAIT_SECONDS):
            return
        async with acquire(self._pool) as conn:  # booked before a restart
            if await sql.cycles.snapshot_stored(conn, cycle_id):
                self._booked.booked([cycle_id])
                return
        if await self._booked.wait(cycle_id, BOOKED_WAIT_SECONDS - BOOKED_FIRST_WAIT_SECONDS):
            return
        raise TransientError(
            f"the snapshot of cycle {cycle_id} is not in the books yet "
            f"(waited {BOOKED_WAIT_SECONDS:g}s)"
        )

    async def accounts(self, _: AccountsQuery) -> Accounts:
        async with acquire(self._pool) as conn:
            rows = await sql.accounts.accounts(conn)
        return Accounts(accounts=tuple(account_view(r) for r in rows))

    async def leaderboard(self, _: LeaderboardQuery) -> Leaderboard:
        async with self._snapshot() as conn:
            rows = await sql.accounts.accounts(conn)
            extras = await _extras(conn)
        return Leaderboard(entries=standings(rows, extras))

    async def positions(self, query: PositionsQuery) -> Positions:
        async with self._snapshot(query.agent_id) as conn:
            rows, total = await sql.positions.positions_page(
                conn, query.status, query.agent_id, query.page.limit, query.page.offset
            )
        return Positions(positions=tuple(position_view(p) for p in rows), total=total)

    async def trades(self, query: TradesQuery) -> Trades:
        records, total = await self._page(
            query.agent_id, query.page, sql.accounts.trade_count, sql.trades.trades_page
        )
        return Trades(trades=tuple(_trade(r) for r in records), total=total)

    async def decisions(self, query: DecisionsQuery) -> Decisions:
        records, total = await self._page(
            query.agent_id, query.page, sql.decisions.decision_count, sql.decisions.decisions_page
        )
        return Decisions(decisions=tuple(decision_record(r) for r in records), total=total)

    async def _page(
        self, agent_id: str | None, page: Page, count: _Count, read: _Read
    ) -> tuple[list[asyncpg.Record], int]:
        """One page of a list and its length, of one agent or all, in one snapshot."""
        async with self._snapshot(agent_id) as conn:
            total = await count(conn, agent_id)
            return await read(conn, agent_id, limit=page.limit, offset=page.offset), total

    async def equity(self, query: EquityQuery) -> bytes:
        """An :class:`EquitySeries` or :class:`EquityColumns` as JSON, written by Postgres.

        Columns of several agents are read in :data:`EQUITY_PARTS` parts at once, each on
        a connection of its own in this answer's snapshot, when the limit cannot bind
        (each part keeps its own newest ``limit``): the probes are the cost, and
        Postgres runs a statement on one core."""
        async with self._snapshot(query.agent_id) as conn:
            if query.agent_id is not None:
                agents = [query.agent_id]
            else:
                agents = [r.agent_id for r in await sql.accounts.accounts(conn)]
            found = await series.plan(conn, agents, query.since, query.points, query.limit)
            if query.format == "points":
                return await series.points_json(conn, found)
            ids = sorted(found.agents)
            if found.most > query.limit or len(ids) < EQUITY_PARTS:
                entries = [await series.column_entries(conn, found)]
            else:
                size = -(-len(ids) // EQUITY_PARTS)
                parts = [ids[i : i + size] for i in range(0, len(ids), size)]
                snapshot: str = await conn.fetchval("SELECT pg_export_snapshot()")
                entries = await asyncio.gather(
                    series.column_entries(conn, found, parts[0]),
                    *(self._columns_in(snapshot, found, part) for part in parts[1:]),
                )
        return series.COLUMNS_OPENING + b",".join(e for e in entries if e) + series.CLOSING

    async def _columns_in(self, snapshot: str, found: series.Plan, agents: list[str]) -> bytes:
        async with (
            acquire(self._pool) as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            await conn.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
            await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
            return await series.column_entries(conn, found, agents)

    async def stats(self, _: StatsQuery) -> Stats:
        # The curves' buckets first, so they hold every snapshot written before this call.
        await curve_store.catch_up(self._pool)
        async with self._snapshot() as conn:
            rows = await sql.accounts.accounts(conn)
            extras = await _extras(conn)
            closes = await sql.trades.closes(conn)
            reasons = await sql.decisions.rejection_reasons(conn)
            curves = await curve_store.curves(conn, {r.agent_id: r.initial_balance for r in rows})
            usage = await sql.decisions.llm_usage(conn)
        # Computed after each completed cycle: read as they are, never waited for.
        found = self._evidence.latest() if self._evidence is not None else {}
        return Stats(
            agents=tuple(
                agent_stats(
                    r, extras, closes.get(r.agent_id), reasons, curves[r.agent_id]
                ).model_copy(
                    update=_usage(usage.get(r.agent_id)) | _evidence(found.get(r.agent_id))
                )
                for r in rows
            )
        )

    async def verify(self, query: VerifyQuery) -> VerifyReport:
        async with acquire(self._pool) as conn:
            findings = await examine(conn, full=query.full)
        return VerifyReport(
            ok=not findings.problems,
            checked_accounts=findings.checked_accounts,
            checked_decisions=findings.checked_decisions,
            problems=tuple(findings.problems),
            full=findings.full,
            checked_from=findings.checked_from,
        )


def _usage(record: asyncpg.Record | None) -> dict[str, Any]:
    """An agent's model calls as AgentStats fields (none: the defaults, no calls)."""
    if record is None:
        return {}
    return {
        "llm_calls": record["calls"],
        "prompt_tokens": record["prompt_tokens"],
        "completion_tokens": record["completion_tokens"],
        "latency_p50_ms": record["p50"],
        "latency_p95_ms": record["p95"],
    }


def _evidence(figures: AgentEvidence | None) -> dict[str, Any]:
    """An agent's live intervals as AgentStats fields (none yet: the defaults)."""
    if figures is None:
        return {}
    return {
        "return_interval_pct": figures.return_pct,
        "alpha_pct": figures.alpha_pct,
        "beta": figures.beta,
        "evidence_cycles": figures.cycles,
    }


def agent_stats(
    row: AccountRow,
    extras: Extras,
    closes: asyncpg.Record | None,
    reasons: Sequence[asyncpg.Record],
    curve: Curve,
) -> AgentStats:
    wins = closes["wins"] if closes else 0
    losses = closes["losses"] if closes else 0
    return AgentStats(
        **_figures(row, extras),
        winning_trades=row.winning_trades,
        losing_trades=row.losing_trades,
        average_win=closes["won"] / wins if closes and wins else None,
        average_loss=closes["lost"] / losses if closes and losses else None,
        max_drawdown_pct=curve.max_drawdown_pct,
        sharpe_ratio=curve.sharpe_ratio,
        rejections_by_reason={r["code"]: r["n"] for r in reasons if r["llm_id"] == row.agent_id},
    )
