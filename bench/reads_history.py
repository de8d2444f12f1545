"""A month of the arena's history written straight into a fresh ledger database, in seconds.

7 agents (config/agents.toml), 5-minute cycles and 60 s ticks: an equity snapshot per agent
and minute (a cycle's every fifth), six symbols' market data per cycle, a decision per
agent and cycle on a valid hash chain, a proposal for each, a round-trip trade every hour
and one position still open per agent, the LLM agents' calls and a few rejections;
accounts that agree with their rows, so ``verify`` passes. Bulk SQL (generate_series) and
COPY, not the services.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg

from services.common.contracts import PARSE_ERROR_PREFIX, Decision
from services.common.lineup import load_lineup
from services.common.settings import PROJECT_ROOT
from services.ledger import chain, sql
from services.ledger.chain import DecisionContent
from services.ledger.migrate import apply_migrations

LINEUP = PROJECT_ROOT / "config" / "agents.toml"
START = datetime(2025, 1, 1, tzinfo=UTC)
CYCLE = timedelta(minutes=5)
INITIAL = Decimal(1000)


@dataclass(frozen=True)
class History:
    agents: tuple[str, ...]
    cycles: int
    equity_rows: int
    decisions: int
    trades: int


_EQUITY = """
INSERT INTO equity_snapshots (llm_id, at, source, equity, balance, margin_used,
    unrealized_pnl, total_fees, total_funding)
SELECT a.llm_id, $2::timestamptz + m * interval '1 minute',
       CASE WHEN m % 5 = 0 THEN 'cycle:c-' || (m / 5 + 1) ELSE 'tick:t-' || m END,
       e.v, e.v, 0, 0, 0, 0
FROM unnest($1::text[]) WITH ORDINALITY AS a (llm_id, k)
CROSS JOIN generate_series(0, $3 * 5 - 1) AS m
CROSS JOIN LATERAL (
    SELECT round((1000 + 60 * sin(m / 900.0 + a.k) + 8 * random())::numeric, 6) AS v
) e
"""

# Every cycle's market_data: six symbols, BTC's mark on a slow wave around 95,000.
_MARKET = """
INSERT INTO market_data (symbol, price, mark_price, data_timestamp, cycle_id)
SELECT s.symbol, p.v, p.v, $1::timestamptz + (n - 1) * interval '5 minutes', 'c-' || n
FROM generate_series(1, $2) AS n
CROSS JOIN unnest($3::text[], $4::numeric[]) AS s (symbol, base)
CROSS JOIN LATERAL (SELECT round(s.base * (1 + 0.05 * sin(n / 700.0))::numeric, 6) AS v) p
"""
MARKET = {"BTCUSDT": 95000, "ETHUSDT": 3300, "SOLUSDT": 180, "BNBUSDT": 650, "XRPUSDT": 2,
          "DOGEUSDT": 0.3}  # fmt: skip

# A position every 12 cycles per agent, closed 6 cycles later; its opening and closing trade.
_TRADES = """
WITH p AS (
    INSERT INTO positions (llm_id, symbol, side, entry_price, current_price, quantity,
        leverage, margin, status, opened_at, closed_at, cycle_id, entry_fee)
    SELECT a, 'BTCUSDT', 'LONG', 95000, 95100, 0.01, 5, 190, 'CLOSED',
           $2::timestamptz + k * 12 * interval '5 minutes',
           $2::timestamptz + (k * 12 + 6) * interval '5 minutes', 'c-' || (k * 12 + 1), 0.38
    FROM unnest($1::text[]) AS a, generate_series(0, $3 / 12 - 1) AS k
    RETURNING id, llm_id, opened_at, closed_at, cycle_id
)
INSERT INTO trades (llm_id, position_id, symbol, action, side, entry_price, exit_price,
    quantity, realized_pnl, pnl_percentage, fees, exit_reason, executed_at, closed_at, cycle_id)
SELECT llm_id, id, 'BTCUSDT', 'BUY', 'LONG', 95000, NULL, 0.01, NULL, NULL, 0.38, NULL,
       opened_at, NULL, cycle_id FROM p
UNION ALL
SELECT llm_id, id, 'BTCUSDT', 'SELL', 'LONG', 95000, 95100, 0.01, r.pnl, r.pnl / 190 * 100,
       0.38, 'decision', closed_at, closed_at, cycle_id
FROM p CROSS JOIN LATERAL (
    -- Spread per position (an uncorrelated random() would be drawn once for every trade).
    SELECT round(((extract(epoch FROM p.opened_at)::bigint / 3600 * 7919) % 1000 - 490)
                 / 100.0, 2) AS pnl
) r
"""

_OPEN = """
WITH p AS (
    INSERT INTO positions (llm_id, symbol, side, entry_price, current_price, quantity,
        leverage, margin, status, opened_at, cycle_id, entry_fee)
    SELECT a, 'ETHUSDT', 'SHORT', 3300, 3300, 0.1, 3, 110, 'OPEN', $2, 'c-' || $3::int, 0.2
    FROM unnest($1::text[]) AS a
    RETURNING id, llm_id, opened_at, cycle_id
)
INSERT INTO trades (llm_id, position_id, symbol, action, side, entry_price, quantity, fees,
    executed_at, cycle_id)
SELECT llm_id, id, 'ETHUSDT', 'SELL', 'SHORT', 3300, 0.1, 0.2, opened_at, cycle_id FROM p
"""

_BOOKS = """
UPDATE llm_accounts a SET
    realized_pnl = t.realized, total_fees = t.fees, total_trades = t.n,
    winning_trades = t.wins, losing_trades = t.losses, margin_used = o.margin,
    open_positions = o.n, unrealized_pnl = 0,
    balance = a.initial_balance + t.realized - t.fees - o.margin,
    total_pnl = t.realized - t.fees
FROM (
    SELECT llm_id, sum(coalesce(realized_pnl, 0)) AS realized, sum(fees) AS fees,
           count(*)::int AS n,
           (count(*) FILTER (WHERE exit_price IS NOT NULL AND realized_pnl > 0))::int AS wins,
           (count(*) FILTER (WHERE exit_price IS NOT NULL AND realized_pnl <= 0))::int AS losses
    FROM trades GROUP BY llm_id
) t, (
    SELECT llm_id, sum(margin) AS margin, count(*)::int AS n
    FROM positions WHERE status = 'OPEN' GROUP BY llm_id
) o
WHERE t.llm_id = a.llm_id AND o.llm_id = a.llm_id
"""

_CALLS = """
INSERT INTO llm_api_calls (llm_id, provider, model, response_time_ms, prompt_tokens,
    completion_tokens, estimated_cost, success, called_at, call_id, cycle_id)
SELECT a, 'bench', 'bench-model', 900, 2000, 300, 0.0042, true,
       $2::timestamptz + (n - 1) * interval '5 minutes' + interval '10 seconds',
       'call-' || a || '-' || n, 'c-' || n
FROM unnest($1::text[]) AS a, generate_series(1, $3) AS n
"""

_REJECTIONS = """
INSERT INTO rejected_decisions (llm_id, symbol, decision, reasoning, rejection_reason,
    created_at, decision_id, cycle_id, reason_codes)
SELECT a, 'BTCUSDT', 'BUY', 'bench', 'margin 40 > 30',
       $2::timestamptz + (n - 1) * interval '5 minutes', 'c-' || n || ':' || a, 'c-' || n,
       '{margin_too_high}'
FROM unnest($1::text[]) AS a, generate_series(20, $3, 20) AS n
"""


def _decisions(agents: tuple[str, ...], cycles: int) -> tuple[list[tuple[object, ...]], str]:
    """Every decision row in chain order, and the chain's last hash."""
    template = Decision(
        decision_id=f"x:{agents[0]}",
        cycle_id="x",
        agent_id=agents[0],
        decided_at=START,
        decision_deadline=START,
        actions=(),
        reasoning="Holding: no edge in the last candles.",
        model="bench-model",
    ).model_dump(mode="json")
    rows: list[tuple[object, ...]] = []
    prev = chain.GENESIS
    seq = 0
    for n in range(1, cycles + 1):
        started = START + (n - 1) * CYCLE
        decided, applied = started + timedelta(seconds=20), started + timedelta(seconds=30)
        for agent in agents:
            seq += 1
            error = f"{PARSE_ERROR_PREFIX}no JSON object found" if seq % 97 == 0 else None
            decision = {
                **template,
                "decision_id": f"c-{n}:{agent}",
                "cycle_id": f"c-{n}",
                "agent_id": agent,
                "decided_at": decided.isoformat().replace("+00:00", "Z"),
                "decision_deadline": (started + timedelta(minutes=1)).isoformat(),
                "error": error,
            }
            columns = chain.columns(
                actions=[],
                reasoning=decision["reasoning"],
                model=decision["model"],
                prompt_sha256=None,
                error=error,
                decided_at=decided,
            )
            content = DecisionContent(
                decision["decision_id"], decision["cycle_id"], agent, decision, [], applied, columns
            )
            link = chain.link(seq, prev, content)
            prev = link.hash
            rows.append(
                (
                    content.decision_id,
                    content.cycle_id,
                    agent,
                    "[]",
                    columns["reasoning"],
                    columns["model"],
                    None,
                    error,
                    decided,
                    "[]",
                    applied,
                    seq,
                    json.dumps(decision),
                    link.prev_hash,
                    link.hash,
                )
            )
    return rows, prev


async def build(conn: asyncpg.Connection, days: float, lineup: Path = LINEUP) -> History:
    """Write ``days`` of history into the empty database behind ``conn``."""
    await apply_migrations(conn)
    line_up = load_lineup(lineup)
    agents = tuple(a.id for a in line_up.agents)
    cycles = int(days * 24 * 60 / 5)
    end = START + cycles * CYCLE
    async with conn.transaction():
        await sql.accounts.upsert_accounts(conn, line_up, INITIAL, START)
        await conn.execute(
            "INSERT INTO cycles (cycle_id, sequence, started_at, decision_deadline, "
            "expected_agents, status, completed_at, duration_seconds) "
            "SELECT 'c-' || n, n, $1::timestamptz + (n - 1) * interval '5 minutes', "
            "$1::timestamptz + (n - 1) * interval '5 minutes' + interval '1 minute', $2, "
            "'completed', $1::timestamptz + (n - 1) * interval '5 minutes' + interval '40 s', "
            "40 FROM generate_series(1, $3) AS n",
            START,
            list(agents),
            cycles,
        )
        await conn.execute(_EQUITY, list(agents), START, cycles)
        await conn.execute(
            _MARKET, START, cycles, list(MARKET), [Decimal(str(v)) for v in MARKET.values()]
        )
        await conn.execute(_TRADES, list(agents), START, cycles)
        await conn.execute(_OPEN, list(agents), end, cycles)
        await conn.execute(_BOOKS)
        rows, head = _decisions(agents, cycles)
        await conn.copy_records_to_table(
            "decisions",
            records=rows,
            columns=[
                "decision_id", "cycle_id", "llm_id", "actions", "reasoning", "model",
                "prompt_sha256", "error", "decided_at", "results", "applied_at", "seq",
                "decision", "prev_hash", "hash",
            ],
        )  # fmt: skip
        await conn.execute("UPDATE decision_chain_head SET seq = $1, hash = $2", len(rows), head)
        await conn.execute(
            "INSERT INTO proposals (decision_id, cycle_id, llm_id, decided_at, recorded_at) "
            "SELECT decision_id, cycle_id, llm_id, decided_at, now() - interval '1 day' "
            "FROM decisions"
        )
        llm = [a.id for a in line_up.agents if a.provider != "baseline"]
        await conn.execute(_CALLS, llm, START, cycles)
        await conn.execute(_REJECTIONS, list(agents), START, cycles)
    await conn.execute("VACUUM ANALYZE")
    equity_rows = await conn.fetchval("SELECT count(*) FROM equity_snapshots")
    trades = await conn.fetchval("SELECT count(*) FROM trades")
    return History(agents, cycles, int(equity_rows), len(rows), int(trades))
