"""Every SQL statement of the ledger, on a connection the caller owns (and its transaction)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

import asyncpg
from asyncpg import Connection

from services.common.contracts import (
    CycleStarted,
    Decision,
    LlmCall,
    MarketSnapshot,
    PositionSide,
    PositionStatus,
    Verdict,
)
from services.common.lineup import Lineup
from services.ledger import chain
from services.ledger.accounting import Book, Closing, Opening
from services.ledger.chain import ChainLink, DecisionContent

# ---------------------------------------------------------------- rows


@dataclass(frozen=True)
class AccountRow:
    llm_id: str
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
        return Book(
            balance=self.balance,
            margin_used=self.margin_used,
            realized_pnl=self.realized_pnl,
            unrealized_pnl=self.unrealized_pnl,
            total_fees=self.total_fees,
            total_funding=self.total_funding,
            total_trades=self.total_trades,
            winning_trades=self.winning_trades,
            losing_trades=self.losing_trades,
            open_positions=self.open_positions,
        )


@dataclass(frozen=True)
class PositionRow:
    id: UUID
    llm_id: str
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


@dataclass(frozen=True)
class CycleRow:
    cycle_id: str
    sequence: int
    started_at: datetime
    decision_deadline: datetime
    expected_agents: tuple[str, ...]
    status: str

    # The status of a cycle the market never announced (no row): nothing trades in it.
    UNKNOWN = "unknown"

    @property
    def running(self) -> bool:
        return self.status == "running"

    @classmethod
    def unknown(cls, cycle_id: str) -> CycleRow:
        never = datetime.min.replace(tzinfo=UTC)
        return cls(cycle_id, 0, never, never, (), cls.UNKNOWN)


_ACCOUNT_COLUMNS = ", ".join(AccountRow.__dataclass_fields__)
_POSITION_COLUMNS = ", ".join(PositionRow.__dataclass_fields__)


def _account(record: asyncpg.Record) -> AccountRow:
    return AccountRow(**dict(record))


def _position(record: asyncpg.Record | dict[str, Any]) -> PositionRow:
    values: dict[str, Any] = dict(record)
    values["side"] = PositionSide(values["side"])
    values["status"] = PositionStatus(values["status"])
    return PositionRow(**values)


# ---------------------------------------------------------------- messages


async def claim_message(conn: Connection, msg_id: str, consumer: str) -> bool:
    """Record that ``msg_id`` is being applied; False when it already was."""
    claimed = await conn.fetchval(
        "INSERT INTO processed_messages (msg_id, consumer) VALUES ($1, $2) "
        "ON CONFLICT DO NOTHING RETURNING msg_id",
        msg_id,
        consumer,
    )
    return claimed is not None


async def claim_messages(conn: Connection, msg_ids: Sequence[str], consumer: str) -> set[str]:
    """Record that ``msg_ids`` are being applied; returns those not seen before."""
    records = await conn.fetch(
        "INSERT INTO processed_messages (msg_id, consumer) "
        "SELECT DISTINCT unnest($1::text[]), $2 ON CONFLICT DO NOTHING RETURNING msg_id",
        list(msg_ids),
        consumer,
    )
    return {r["msg_id"] for r in records}


async def consumer_position(conn: Connection, durable: str) -> int | None:
    """The last stream sequence ``durable`` applied, if it applied any."""
    value = await conn.fetchval(
        "SELECT stream_sequence FROM consumer_positions WHERE durable = $1", durable
    )
    return None if value is None else int(value)


async def advance_consumer(conn: Connection, durable: str, stream_sequence: int) -> None:
    await conn.execute(
        "INSERT INTO consumer_positions (durable, stream_sequence) VALUES ($1, $2) "
        "ON CONFLICT (durable) DO UPDATE SET stream_sequence = "
        "GREATEST(consumer_positions.stream_sequence, EXCLUDED.stream_sequence), "
        "updated_at = now()",
        durable,
        stream_sequence,
    )


async def claim_tick(conn: Connection, tick_id: str, now: datetime) -> bool:
    """Record that tick ``tick_id`` is being applied; False when it already was."""
    claimed = await conn.fetchval(
        "INSERT INTO applied_ticks (tick_id, applied_at) VALUES ($1, $2) "
        "ON CONFLICT DO NOTHING RETURNING tick_id",
        tick_id,
        now,
    )
    return claimed is not None


# ---------------------------------------------------------------- accounts


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


async def account(conn: Connection, llm_id: str, *, for_update: bool = False) -> AccountRow | None:
    lock = " FOR UPDATE" if for_update else ""
    record = await conn.fetchrow(
        f"SELECT {_ACCOUNT_COLUMNS} FROM llm_accounts WHERE llm_id = $1{lock}", llm_id
    )
    return None if record is None else _account(record)


async def accounts(conn: Connection) -> list[AccountRow]:
    records = await conn.fetch(f"SELECT {_ACCOUNT_COLUMNS} FROM llm_accounts ORDER BY llm_id")
    return [_account(r) for r in records]


async def lock_accounts(conn: Connection, llm_ids: Iterable[str]) -> None:
    """Lock accounts in one fixed order, so concurrent transactions cannot deadlock."""
    await conn.execute(
        "SELECT 1 FROM llm_accounts WHERE llm_id = ANY($1::text[]) ORDER BY llm_id FOR UPDATE",
        sorted(set(llm_ids)),
    )


async def save_book(conn: Connection, llm_id: str, book: Book, now: datetime) -> None:
    await conn.execute(
        "UPDATE llm_accounts SET balance = $2, margin_used = $3, total_pnl = $4, "
        "realized_pnl = $5, unrealized_pnl = $6, total_fees = $7, total_trades = $8, "
        "winning_trades = $9, losing_trades = $10, open_positions = $11, updated_at = $12, "
        "total_funding = $13 WHERE llm_id = $1",
        llm_id,
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


# ---------------------------------------------------------------- positions and trades


async def open_position_for(
    conn: Connection, llm_id: str, symbol: str, *, for_update: bool = False
) -> PositionRow | None:
    lock = " FOR UPDATE" if for_update else ""
    record = await conn.fetchrow(
        f"SELECT {_POSITION_COLUMNS} FROM positions "
        f"WHERE llm_id = $1 AND symbol = $2 AND status = 'OPEN'{lock}",
        llm_id,
        symbol,
    )
    return None if record is None else _position(record)


async def open_positions(conn: Connection, llm_id: str | None = None) -> list[PositionRow]:
    records = await conn.fetch(
        f"SELECT {_POSITION_COLUMNS} FROM positions "
        "WHERE status = 'OPEN' AND ($1::text IS NULL OR llm_id = $1) "
        "ORDER BY llm_id, opened_at, symbol",
        llm_id,
    )
    return [_position(r) for r in records]


async def portfolio(conn: Connection, llm_id: str) -> tuple[AccountRow, list[PositionRow]] | None:
    """An account and its open positions in one statement (one round trip, one snapshot)."""
    record = await conn.fetchrow(
        f"SELECT {_ACCOUNT_COLUMNS}, ARRAY(SELECT ROW({_POSITION_COLUMNS}) FROM positions "
        "WHERE status = 'OPEN' AND llm_id = $1 ORDER BY opened_at, symbol) AS held_positions "
        "FROM llm_accounts WHERE llm_id = $1",
        llm_id,
    )
    if record is None:
        return None
    values = dict(record)
    rows = values.pop("held_positions")
    positions = [
        _position(dict(zip(PositionRow.__dataclass_fields__, row, strict=True))) for row in rows
    ]
    return AccountRow(**values), positions


async def open_position_holders(conn: Connection, symbols: Sequence[str]) -> list[str]:
    """The accounts holding an open position on any of ``symbols``, sorted."""
    records = await conn.fetch(
        "SELECT DISTINCT llm_id FROM positions WHERE status = 'OPEN' AND symbol = ANY($1::text[]) "
        "ORDER BY llm_id",
        list(symbols),
    )
    return [r["llm_id"] for r in records]


async def open_positions_on(
    conn: Connection, symbols: Sequence[str], llm_ids: Sequence[str]
) -> list[PositionRow]:
    """Lock and return the open positions of ``llm_ids`` on ``symbols``."""
    records = await conn.fetch(
        f"SELECT {_POSITION_COLUMNS} FROM positions "
        "WHERE status = 'OPEN' AND symbol = ANY($1::text[]) AND llm_id = ANY($2::text[]) "
        "ORDER BY id FOR UPDATE",
        list(symbols),
        list(llm_ids),
    )
    return [_position(r) for r in records]


async def insert_position(
    conn: Connection,
    llm_id: str,
    symbol: str,
    opening: Opening,
    *,
    stop_loss: Decimal | None,
    take_profit: Decimal | None,
    cycle_id: str | None,
    now: datetime,
) -> PositionRow:
    record = await conn.fetchrow(
        "INSERT INTO positions (llm_id, symbol, side, entry_price, current_price, quantity, "
        "leverage, margin, unrealized_pnl, liquidation_price, stop_loss, take_profit, status, "
        "opened_at, cycle_id, entry_fee) "
        "VALUES ($1, $2, $3, $4, $4, $5, $6, $7, 0, $8, $9, $10, 'OPEN', $11, $12, $13) "
        f"RETURNING {_POSITION_COLUMNS}",
        llm_id,
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
    )
    return _position(record)


async def close_position(
    conn: Connection,
    position_id: UUID,
    closing: Closing,
    now: datetime,
    status: PositionStatus = PositionStatus.CLOSED,
) -> PositionRow:
    record = await conn.fetchrow(
        "UPDATE positions SET status = $2, current_price = $3, unrealized_pnl = 0, "
        f"closed_at = $4 WHERE id = $1 RETURNING {_POSITION_COLUMNS}",
        position_id,
        status.value,
        closing.exit_price,
        now,
    )
    return _position(record)


async def advance_marks(
    conn: Connection, mark_prices: Mapping[str, Decimal], at: datetime
) -> set[str]:
    """Record ``at`` as each symbol's mark time unless a later mark is already applied.

    Returns the symbols whose mark moved forward (or stayed at the same time): only those
    may be re-marked. Rows are taken in symbol order, so concurrent markers cannot deadlock.
    """
    symbols = sorted(mark_prices)
    records = await conn.fetch(
        "INSERT INTO symbol_marks (symbol, marked_at, mark_price) "
        "SELECT s, $2, p FROM unnest($1::text[], $3::numeric[]) AS u (s, p) ORDER BY s "
        "ON CONFLICT (symbol) DO UPDATE SET marked_at = EXCLUDED.marked_at, "
        "mark_price = EXCLUDED.mark_price WHERE symbol_marks.marked_at <= EXCLUDED.marked_at "
        "RETURNING symbol",
        symbols,
        at,
        [mark_prices[s] for s in symbols],
    )
    return {r["symbol"] for r in records}


async def mark_positions(conn: Connection, marks: Sequence[tuple[UUID, Decimal, Decimal]]) -> None:
    """Set (position id, current price, unrealized PnL) for each position."""
    await conn.executemany(
        "UPDATE positions SET current_price = $2, unrealized_pnl = $3 WHERE id = $1", marks
    )


async def insert_open_trade(
    conn: Connection, position: PositionRow, opening: Opening, now: datetime
) -> None:
    action = "BUY" if opening.side is PositionSide.LONG else "SELL"
    await conn.execute(
        "INSERT INTO trades (llm_id, position_id, symbol, action, side, entry_price, quantity, "
        "fees, executed_at, cycle_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        position.llm_id,
        position.id,
        position.symbol,
        action,
        opening.side.value,
        opening.entry_price,
        opening.quantity,
        opening.fee,
        now,
        position.cycle_id,
    )


async def insert_close_trade(
    conn: Connection,
    position: PositionRow,
    closing: Closing,
    *,
    exit_reason: str,
    cycle_id: str | None,
    now: datetime,
) -> None:
    action = "SELL" if position.side is PositionSide.LONG else "BUY"
    await conn.execute(
        "INSERT INTO trades (llm_id, position_id, symbol, action, side, entry_price, "
        "exit_price, quantity, realized_pnl, pnl_percentage, fees, exit_reason, executed_at, "
        "closed_at, cycle_id) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14)",
        position.llm_id,
        position.id,
        position.symbol,
        action,
        position.side.value,
        position.entry_price,
        closing.exit_price,
        position.quantity,
        closing.realized_pnl,
        closing.pnl_percentage,
        closing.fee,
        exit_reason,
        now,
        cycle_id,
    )


# ---------------------------------------------------------------- cycles and market data


async def insert_cycle(
    conn: Connection, started: CycleStarted, expected_agents: Sequence[str]
) -> None:
    await conn.execute(
        "INSERT INTO cycles (cycle_id, sequence, started_at, decision_deadline, expected_agents) "
        "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (cycle_id) DO NOTHING",
        started.cycle_id,
        started.sequence,
        started.started_at,
        started.decision_deadline,
        list(expected_agents),
    )


async def cycle(conn: Connection, cycle_id: str, *, for_update: bool = False) -> CycleRow | None:
    lock = " FOR UPDATE" if for_update else ""
    record = await conn.fetchrow(
        "SELECT cycle_id, sequence, started_at, decision_deadline, expected_agents, status "
        f"FROM cycles WHERE cycle_id = $1{lock}",
        cycle_id,
    )
    if record is None:
        return None
    values = dict(record)
    values["expected_agents"] = tuple(values["expected_agents"])
    return CycleRow(**values)


async def finish_cycle(
    conn: Connection, cycle_id: str, status: str, now: datetime, duration_seconds: float
) -> None:
    await conn.execute(
        "UPDATE cycles SET status = $2, completed_at = $3, duration_seconds = $4 "
        "WHERE cycle_id = $1",
        cycle_id,
        status,
        now,
        duration_seconds,
    )


async def overdue_cycles(conn: Connection, deadline_before: datetime) -> list[str]:
    records = await conn.fetch(
        "SELECT cycle_id FROM cycles WHERE status = 'running' AND decision_deadline < $1 "
        "ORDER BY decision_deadline",
        deadline_before,
    )
    return [r["cycle_id"] for r in records]


async def insert_market_data(conn: Connection, snapshot: MarketSnapshot) -> None:
    await conn.executemany(
        "INSERT INTO market_data (symbol, price, mark_price, volume_24h, price_change_24h, "
        "high_24h, low_24h, funding_rate, data_timestamp, cycle_id) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
        "ON CONFLICT (cycle_id, symbol) DO NOTHING",
        [
            (
                s.symbol,
                s.last_price,
                s.mark_price,
                s.volume_24h,
                s.price_change_pct_24h,
                s.high_24h,
                s.low_24h,
                s.funding_rate,
                snapshot.taken_at,
                snapshot.cycle_id,
            )
            for s in snapshot.symbols
        ],
    )


async def snapshot_stored(conn: Connection, cycle_id: str) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM market_data WHERE cycle_id = $1)", cycle_id
        )
    )


async def snapshot_prices(conn: Connection, cycle_id: str) -> dict[str, Decimal]:
    """Last price per symbol of a cycle's snapshot; empty until the snapshot is stored."""
    records = await conn.fetch(
        "SELECT symbol, price FROM market_data WHERE cycle_id = $1", cycle_id
    )
    return {r["symbol"]: r["price"] for r in records}


# ---------------------------------------------------------------- decisions and audit


async def insert_proposal(conn: Connection, decision: Decision) -> None:
    await conn.execute(
        "INSERT INTO proposals (decision_id, cycle_id, llm_id, decided_at) "
        "VALUES ($1, $2, $3, $4) ON CONFLICT (decision_id) DO NOTHING",
        decision.decision_id,
        decision.cycle_id,
        decision.agent_id,
        decision.decided_at,
    )


async def unbooked_proposals(
    conn: Connection, recorded_before: datetime, recorded_from: datetime | None = None
) -> list[asyncpg.Record]:
    """Proposals recorded in [``recorded_from``, ``recorded_before``) that have no decision
    in the books."""
    return list(
        await conn.fetch(
            "SELECT p.decision_id, p.llm_id, p.recorded_at FROM proposals p "
            "WHERE p.recorded_at < $1 AND p.recorded_at >= $2 AND NOT EXISTS "
            "(SELECT 1 FROM decisions d WHERE d.decision_id = p.decision_id) "
            "ORDER BY p.recorded_at",
            recorded_before,
            recorded_from or datetime.min.replace(tzinfo=UTC),
        )
    )


async def decision_exists(conn: Connection, decision_id: str) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM decisions WHERE decision_id = $1", decision_id))


async def insert_decision(
    conn: Connection, verdict: Verdict, results: Sequence[dict[str, Any]], now: datetime
) -> ChainLink:
    """Store the decision and append it to the hash chain (locks the chain's head)."""
    decision = verdict.decision
    head = await conn.fetchrow("SELECT seq, hash FROM decision_chain_head FOR UPDATE")
    row = DecisionContent(
        decision_id=decision.decision_id,
        cycle_id=decision.cycle_id,
        llm_id=decision.agent_id,
        decision=decision.model_dump(mode="json"),
        results=[dict(r) for r in results],
        applied_at=now,
        columns=chain.columns(
            actions=[a.model_dump(mode="json") for a in decision.actions],
            reasoning=decision.reasoning,
            model=decision.model,
            prompt_sha256=decision.prompt_sha256,
            error=decision.error,
            decided_at=decision.decided_at,
        ),
    )
    link = chain.link(head["seq"] + 1, head["hash"], row)
    await conn.execute(
        "INSERT INTO decisions (decision_id, cycle_id, llm_id, actions, reasoning, model, "
        "prompt_sha256, error, decided_at, results, applied_at, seq, decision, prev_hash, hash) "
        "VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9, $10::jsonb, $11, $12, $13::jsonb, "
        "$14, $15)",
        decision.decision_id,
        decision.cycle_id,
        decision.agent_id,
        json.dumps(row.columns["actions"]),
        decision.reasoning,
        decision.model,
        decision.prompt_sha256,
        decision.error,
        decision.decided_at,
        json.dumps(list(results)),
        now,
        link.seq,
        json.dumps(row.decision),
        link.prev_hash,
        link.hash,
    )
    await conn.execute("UPDATE decision_chain_head SET seq = $1, hash = $2", link.seq, link.hash)
    return link


async def chain_rows(
    conn: Connection, after_seq: int = 0
) -> list[tuple[int | None, str | None, str | None, DecisionContent]]:
    """The decisions after chain position ``after_seq`` (and any outside the chain), in
    chain order: (seq, prev_hash, hash, content)."""
    records = await conn.fetch(
        "SELECT seq, prev_hash, hash, decision_id, cycle_id, llm_id, decision, results, "
        "applied_at, actions, reasoning, model, prompt_sha256, error, decided_at "
        "FROM decisions WHERE seq IS NULL OR seq > $1 "
        "ORDER BY seq NULLS FIRST, applied_at, decision_id",
        after_seq,
    )
    return [
        (
            r["seq"],
            r["prev_hash"],
            r["hash"],
            DecisionContent(
                decision_id=r["decision_id"],
                cycle_id=r["cycle_id"],
                llm_id=r["llm_id"],
                decision=json.loads(r["decision"]) if r["decision"] is not None else None,
                results=json.loads(r["results"]),
                applied_at=r["applied_at"],
                columns=chain.columns(
                    actions=json.loads(r["actions"]),
                    reasoning=r["reasoning"],
                    model=r["model"],
                    prompt_sha256=r["prompt_sha256"],
                    error=r["error"],
                    decided_at=r["decided_at"],
                ),
            ),
        )
        for r in records
    ]


async def chain_head(conn: Connection) -> tuple[int, str]:
    record = await conn.fetchrow("SELECT seq, hash FROM decision_chain_head")
    return int(record["seq"]), str(record["hash"])


async def decision_results(conn: Connection, cycle_id: str) -> dict[str, list[dict[str, Any]]]:
    records = await conn.fetch(
        "SELECT llm_id, results FROM decisions WHERE cycle_id = $1", cycle_id
    )
    return {r["llm_id"]: json.loads(r["results"]) for r in records}


async def insert_rejection(
    conn: Connection,
    *,
    llm_id: str,
    symbol: str | None,
    decision: str,
    reasoning: str,
    rejection_reason: str,
    confidence: float | None,
    decision_id: str,
    cycle_id: str,
    reason_codes: Sequence[str],
    now: datetime,
) -> None:
    await conn.execute(
        "INSERT INTO rejected_decisions (llm_id, symbol, decision, reasoning, rejection_reason, "
        "confidence, created_at, decision_id, cycle_id, reason_codes) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        llm_id,
        symbol,
        decision,
        reasoning,
        rejection_reason,
        None if confidence is None else Decimal(str(confidence)),
        now,
        decision_id,
        cycle_id,
        list(reason_codes),
    )


async def insert_llm_call(conn: Connection, call: LlmCall) -> None:
    await conn.execute(
        "INSERT INTO llm_api_calls (llm_id, provider, model, response_time_ms, prompt_tokens, "
        "completion_tokens, estimated_cost, success, called_at, call_id, cycle_id, error) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) "
        "ON CONFLICT (call_id) DO NOTHING",
        call.agent_id,
        call.provider,
        call.model,
        call.response_time_ms,
        call.prompt_tokens,
        call.completion_tokens,
        call.estimated_cost,
        call.success,
        call.called_at,
        call.call_id,
        call.cycle_id,
        call.error,
    )


# ---------------------------------------------------------------- funding and equity


async def latest_funding_rates(conn: Connection, symbols: Sequence[str]) -> dict[str, Decimal]:
    """The funding rate of each symbol's most recent snapshot row."""
    records = await conn.fetch(
        "SELECT DISTINCT ON (symbol) symbol, funding_rate FROM market_data "
        "WHERE symbol = ANY($1::text[]) AND funding_rate IS NOT NULL "
        "ORDER BY symbol, data_timestamp DESC",
        list(symbols),
    )
    return {r["symbol"]: r["funding_rate"] for r in records}


async def last_funding_times(
    conn: Connection, position_ids: Sequence[UUID]
) -> dict[UUID, datetime]:
    """The latest funding time each of these positions has paid, if any."""
    records = await conn.fetch(
        "SELECT position_id, max(funding_time) AS last FROM funding_payments "
        "WHERE position_id = ANY($1::uuid[]) GROUP BY position_id",
        list(position_ids),
    )
    return {r["position_id"]: r["last"] for r in records}


async def insert_funding(
    conn: Connection,
    position: PositionRow,
    *,
    funding_time: datetime,
    mark_price: Decimal,
    funding_rate: Decimal,
    amount: Decimal,
    now: datetime,
) -> None:
    await conn.execute(
        "INSERT INTO funding_payments (llm_id, position_id, symbol, funding_time, mark_price, "
        "quantity, funding_rate, amount, paid_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        position.llm_id,
        position.id,
        position.symbol,
        funding_time,
        mark_price,
        position.quantity,
        funding_rate,
        amount,
        now,
    )


async def snapshot_equity(
    conn: Connection, at: datetime, source: str, llm_ids: Sequence[str] | None = None
) -> None:
    """One equity_snapshots row per account (or per ``llm_ids``) from its current book."""
    await conn.execute(
        "INSERT INTO equity_snapshots (llm_id, at, source, equity, balance, margin_used, "
        "unrealized_pnl, total_fees, total_funding) "
        "SELECT llm_id, $1, $2, balance + margin_used + unrealized_pnl, balance, margin_used, "
        "unrealized_pnl, total_fees, total_funding FROM llm_accounts "
        "WHERE $3::text[] IS NULL OR llm_id = ANY($3::text[])",
        at,
        source,
        None if llm_ids is None else list(llm_ids),
    )


async def positions_page(
    conn: Connection, where: str, args: Sequence[Any], limit: int, offset: int
) -> list[PositionRow]:
    """Positions matching ``where`` (placeholders $1..$n for ``args``), newest first."""
    n = len(args)
    records = await conn.fetch(
        f"SELECT {_POSITION_COLUMNS} FROM positions WHERE {where} "
        f"ORDER BY opened_at DESC, id LIMIT ${n + 1} OFFSET ${n + 2}",
        *args,
        limit,
        offset,
    )
    return [_position(r) for r in records]


async def agent_page(
    conn: asyncpg.Connection,
    table: Literal["trades", "decisions"],
    order_by: str,
    agent_id: str | None,
    *,
    limit: int,
    offset: int,
) -> list[asyncpg.Record]:
    """One page of ``table`` (all agents, or one); an index serves each order.

    ``table`` and ``order_by`` are the callers' constants, never request input.
    """
    if agent_id is None:
        sql = f"SELECT * FROM {table} ORDER BY {order_by} LIMIT $1 OFFSET $2"
        return list(await conn.fetch(sql, limit, offset))
    sql = f"SELECT * FROM {table} WHERE llm_id = $1 ORDER BY {order_by} LIMIT $2 OFFSET $3"
    return list(await conn.fetch(sql, agent_id, limit, offset))


async def trade_count(conn: asyncpg.Connection, agent_id: str | None) -> int:
    """Trades of one agent or all, from the accounts' counters (``verify`` checks that each
    equals its rows), so a page's total costs no count over the table."""
    total = await conn.fetchval(
        "SELECT coalesce(sum(total_trades), 0) FROM llm_accounts "
        "WHERE llm_id = $1 OR $1::text IS NULL",
        agent_id,
    )
    return int(total)


async def decision_count(conn: asyncpg.Connection, agent_id: str | None) -> int:
    """Decisions of one agent (counted on its index) or all: the chain's length (every
    decision is appended to it; ``verify`` checks the rows against its head) and any
    stored before the chain."""
    if agent_id is not None:
        return int(
            await conn.fetchval("SELECT count(*) FROM decisions WHERE llm_id = $1", agent_id)
        )
    total = await conn.fetchval(
        "SELECT (SELECT seq FROM decision_chain_head) "
        "+ (SELECT count(*) FROM decisions WHERE seq IS NULL)"
    )
    return int(total)
