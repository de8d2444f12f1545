"""``decisions`` and their hash chain, ``proposals``, ``rejected_decisions``,
``llm_api_calls`` and ``verify_checkpoint`` (how far the chain was last checked)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
from asyncpg import Connection

from services.common.contracts import PARSE_ERROR_PREFIX, Decision, LlmCall, Verdict
from services.ledger import chain
from services.ledger.accounting import Book
from services.ledger.chain import ChainLink, DecisionContent
from services.ledger.sql import accounts, equity, outbox
from services.ledger.sql.arrays import columns
from services.ledger.sql.cycles import claiming
from services.ledger.sql.paging import agent_page

# ---------------------------------------------------------------- proposals


_PROPOSALS = claiming(
    "INSERT INTO proposals (decision_id, cycle_id, llm_id, decided_at) "
    "SELECT r.decision_id, r.cycle_id, r.llm_id, r.decided_at "
    "FROM unnest($1::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[]) "
    "AS r(msg_id, decision_id, cycle_id, llm_id, decided_at) "
    "WHERE r.msg_id IN (SELECT msg_id FROM claimed) ON CONFLICT (decision_id) DO NOTHING"
)


async def record_proposals(
    conn: Connection, consumer: str, proposals: Sequence[tuple[str, Decision]]
) -> int:
    """Record each proposed decision of a message ``consumer`` has not applied before (by
    message id), all in one statement; returns how many messages were new."""
    rows = _first_of_each(proposals)
    if not rows:
        return 0
    return int(
        await conn.fetchval(
            _PROPOSALS,
            [msg_id for msg_id, _ in rows],
            consumer,
            [d.decision_id for _, d in rows],
            [d.cycle_id for _, d in rows],
            [d.agent_id for _, d in rows],
            [d.decided_at for _, d in rows],
        )
    )


def _first_of_each(items: Sequence[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """``items`` with each message id once (a copy delivered in the same batch dropped)."""
    first: dict[str, tuple[str, Any]] = {}
    for msg_id, item in items:
        first.setdefault(msg_id, (msg_id, item))
    return list(first.values())


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


# The columns a chain link covers, as :func:`_content` reads them.
_CHAIN_SELECT = (
    "SELECT seq, prev_hash, hash, decision_id, cycle_id, llm_id, decision, results, "
    "applied_at, actions, reasoning, model, prompt_sha256, error, decided_at FROM decisions d "
)


@dataclass(frozen=True)
class Booked:
    """A judged decision as the books store it: its verdict, each action's result, when
    it was applied, and whether it joins the hash chain now (a running replay cycle's
    decisions join it when the cycle completes, see :func:`cycle_links`)."""

    verdict: Verdict
    results: Sequence[dict[str, Any]]
    applied_at: datetime
    linked: bool


@dataclass(frozen=True)
class BookSave:
    """An account's book after a decision, the source of the equity snapshot taken of it
    at ``at``, and the decision's events (its positions', then the account's), in order."""

    agent_id: str
    book: Book
    at: datetime
    equity_source: str
    events: tuple[outbox.OutboxRow, ...]


_DECISION_COLUMNS = (
    "decision_id text, cycle_id text, llm_id text, actions text, reasoning text, model text, "
    "prompt_sha256 text, error text, decided_at timestamptz, results text, "
    "applied_at timestamptz, seq bigint, decision text, prev_hash text, hash text"
)
_DECISION_WIDTH = 15
_BOOKS_AT = 18  # the first parameter of the books (after the decisions and the head)
_EQUITY_AT = _BOOKS_AT + accounts.BOOK_WIDTH
_EVENTS_AT = _EQUITY_AT + 3


def _unnest(first: int, columns: str, alias: str) -> str:
    """``unnest`` of one array parameter per column of ``columns`` ("name type, ..."),
    from ``$first`` on, as ``alias`` with the columns' names."""
    pairs = [c.split() for c in columns.split(", ")]
    arrays = ", ".join(f"${first + i}::{kind}[]" for i, (_, kind) in enumerate(pairs))
    return f"unnest({arrays}) AS {alias} ({', '.join(name for name, _ in pairs)})"


_STORE_BOOKED = (
    "WITH decided AS (INSERT INTO decisions (decision_id, cycle_id, llm_id, actions, "
    "reasoning, model, prompt_sha256, error, decided_at, results, applied_at, seq, decision, "
    "prev_hash, hash) SELECT decision_id, cycle_id, llm_id, actions::jsonb, reasoning, model, "
    "prompt_sha256, error, decided_at, results::jsonb, applied_at, seq, decision::jsonb, "
    f"prev_hash, hash FROM {_unnest(1, _DECISION_COLUMNS, 'r')}), "
    "head AS (UPDATE decision_chain_head SET seq = $16, hash = $17 WHERE $16::bigint IS NOT NULL), "
    f"saved AS ({accounts.books_update(_BOOKS_AT)} RETURNING a.*), "
    "snapshot AS ("
    + equity.snapshot_insert(
        "e.at",
        "e.source",
        f"saved JOIN {_unnest(_EQUITY_AT, 'llm_id text, at timestamptz, source text', 'e')} "
        "USING (llm_id)",
    )
    + f"), events AS ({outbox.insert_many_statement(_EVENTS_AT)}) "
    "SELECT count(*) FROM saved"
)


async def store_booked(
    conn: Connection, decisions: Sequence[Booked], books: Sequence[BookSave]
) -> None:
    """Store the decisions, in order, those ``linked`` appended to the hash chain in that
    order, and write each book (to its account, locked by the caller), its equity snapshot
    and its event: one statement, after a read of the chain's head (locked) when some
    decision joins the chain now."""
    if not decisions and not books:
        return
    head = None
    if any(d.linked for d in decisions):
        head = await conn.fetchrow("SELECT seq, hash FROM decision_chain_head FOR UPDATE")
        if head is None:
            raise LookupError("the decision chain has no head row")
    seq, last_hash = (head["seq"], head["hash"]) if head else (0, "")
    rows = []
    for booked in decisions:
        row = _content_of(booked)
        link = None
        if booked.linked:
            link = chain.link(seq + 1, last_hash, row)
            seq, last_hash = link.seq, link.hash
        rows.append(_decision_values(booked, row, link))
    saved = await conn.fetchval(
        _STORE_BOOKED,
        *columns(rows, _DECISION_WIDTH),
        seq if head else None,
        last_hash if head else None,
        *columns(
            [accounts.book_values(b.agent_id, b.book, b.at) for b in books], accounts.BOOK_WIDTH
        ),
        *columns([(b.agent_id, b.at, b.equity_source) for b in books], 3),
        *columns([e.values() for b in books for e in b.events], 4),
    )
    if saved != len(books):
        missing = sorted({b.agent_id for b in books})
        raise LookupError(f"not every account of {missing} was written ({saved} were)")


def _content_of(booked: Booked) -> DecisionContent:
    decision = booked.verdict.decision
    return DecisionContent(
        decision_id=decision.decision_id,
        cycle_id=decision.cycle_id,
        agent_id=decision.agent_id,
        decision=decision.model_dump(mode="json"),
        results=[dict(r) for r in booked.results],
        applied_at=booked.applied_at,
        columns=chain.columns(
            actions=[a.model_dump(mode="json") for a in decision.actions],
            reasoning=decision.reasoning,
            model=decision.model,
            prompt_sha256=decision.prompt_sha256,
            error=decision.error,
            decided_at=decision.decided_at,
        ),
    )


def _decision_values(
    booked: Booked, row: DecisionContent, link: ChainLink | None
) -> tuple[Any, ...]:
    decision = booked.verdict.decision
    return (
        decision.decision_id,
        decision.cycle_id,
        decision.agent_id,
        json.dumps(row.columns["actions"]),
        decision.reasoning,
        decision.model,
        decision.prompt_sha256,
        decision.error,
        decision.decided_at,
        json.dumps(list(booked.results)),
        booked.applied_at,
        link.seq if link else None,
        json.dumps(row.decision),
        link.prev_hash if link else None,
        link.hash if link else None,
    )


@dataclass(frozen=True)
class CycleLinks:
    """A replay cycle's decisions outside the chain, each with its link, in agent order
    (the chain's head read locked), and each agent's results (the cycle's outcomes)."""

    links: list[tuple[str, ChainLink]]
    results: dict[str, list[dict[str, Any]]]


async def cycle_links(conn: Connection, cycle_id: str) -> CycleLinks:
    """Read the cycle's decisions not yet in the chain with the chain's head (locked), in
    one round trip, and link them in turn; :func:`sql.cycles.finish_cycle` writes the
    links with the cycle's close."""
    records = await conn.fetch(
        "WITH head AS (SELECT seq AS head_seq, hash AS head_hash FROM decision_chain_head "
        "FOR UPDATE) SELECT d.*, head.head_seq, head.head_hash FROM ("
        + _CHAIN_SELECT
        + "WHERE cycle_id = $1 AND seq IS NULL) d CROSS JOIN head "
        "ORDER BY d.llm_id, d.decision_id",
        cycle_id,
    )
    if not records:
        return CycleLinks([], {})
    seq, prev_hash = records[0]["head_seq"], records[0]["head_hash"]
    links: list[tuple[str, ChainLink]] = []
    for r in records:
        link = chain.link(seq + 1, prev_hash, _content(r))
        links.append((r["decision_id"], link))
        seq, prev_hash = link.seq, link.hash
    return CycleLinks(links, {r["llm_id"]: json.loads(r["results"]) for r in records})


async def chain_rows(
    conn: Connection, after_seq: int = 0
) -> list[tuple[int | None, str | None, str | None, DecisionContent]]:
    """The decisions after chain position ``after_seq`` (and any outside the chain but
    those of a running replay cycle, which join it when the cycle completes), in chain
    order: (seq, prev_hash, hash, content)."""
    records = await conn.fetch(
        _CHAIN_SELECT + "WHERE seq > $1 OR (seq IS NULL AND NOT EXISTS (SELECT 1 FROM cycles c "
        "WHERE c.cycle_id = d.cycle_id AND c.data_time AND c.status = 'running')) "
        "ORDER BY seq NULLS FIRST, applied_at, decision_id",
        after_seq,
    )
    return [(r["seq"], r["prev_hash"], r["hash"], _content(r)) for r in records]


def _content(r: asyncpg.Record) -> DecisionContent:
    return DecisionContent(
        decision_id=r["decision_id"],
        cycle_id=r["cycle_id"],
        agent_id=r["llm_id"],
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
    )


async def chain_head(conn: Connection) -> tuple[int, str]:
    record = await conn.fetchrow("SELECT seq, hash FROM decision_chain_head")
    return int(record["seq"]), str(record["hash"])


async def decided_count(conn: Connection, cycle_id: str, agents: Sequence[str]) -> int:
    """How many of ``agents`` have a decision in the books for ``cycle_id``."""
    count = await conn.fetchval(
        "SELECT count(*) FROM decisions WHERE cycle_id = $1 AND llm_id = ANY($2::text[])",
        cycle_id,
        list(agents),
    )
    return int(count)


async def decision_results(conn: Connection, cycle_id: str) -> dict[str, list[dict[str, Any]]]:
    records = await conn.fetch(
        # In the order cycle_links reads them: an agent's last decision is its outcome.
        "SELECT llm_id, results FROM decisions WHERE cycle_id = $1 ORDER BY llm_id, decision_id",
        cycle_id,
    )
    return {r["llm_id"]: json.loads(r["results"]) for r in records}


async def decisions_page(
    conn: Connection, agent_id: str | None, *, limit: int, offset: int
) -> list[asyncpg.Record]:
    """One page of decisions (all agents, or one), newest first."""
    order = "applied_at DESC, seq DESC NULLS LAST"
    return await agent_page(conn, "decisions", order, agent_id, limit=limit, offset=offset)


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


async def parse_failures(conn: Connection) -> dict[str, int]:
    """Per agent, its decisions whose answer could not be parsed."""
    records = await conn.fetch(
        "SELECT llm_id, count(*)::int AS v FROM decisions "
        "WHERE error IS NOT NULL AND starts_with(error, $1) "
        "GROUP BY llm_id",
        PARSE_ERROR_PREFIX,
    )
    return {r["llm_id"]: r["v"] for r in records}


async def stored_hash(conn: Connection, seq: int) -> str | None:
    """The hash of the decision at chain position ``seq``, None when there is none."""
    stored: str | None = await conn.fetchval("SELECT hash FROM decisions WHERE seq = $1", seq)
    return stored


# ---------------------------------------------------------------- verify's checkpoint


async def checkpoint(conn: Connection) -> asyncpg.Record | None:
    """The last clean check (seq, hash, proposals_until), None before the first."""
    record: asyncpg.Record | None = await conn.fetchrow(
        "SELECT seq, hash, proposals_until FROM verify_checkpoint"
    )
    return record


async def save_checkpoint(
    conn: Connection, seq: int, hash: str, proposals_until: datetime, now: datetime
) -> None:
    """Move the checkpoint forward (never back: two checks may race)."""
    await conn.execute(
        "INSERT INTO verify_checkpoint (id, seq, hash, proposals_until, verified_at) "
        "VALUES (true, $1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET seq = EXCLUDED.seq, "
        "hash = EXCLUDED.hash, proposals_until = EXCLUDED.proposals_until, "
        "verified_at = EXCLUDED.verified_at WHERE verify_checkpoint.seq <= EXCLUDED.seq",
        seq,
        hash,
        proposals_until,
        now,
    )


# ---------------------------------------------------------------- rejections and calls


async def insert_rejection(
    conn: Connection,
    *,
    agent_id: str,
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
        agent_id,
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


_LLM_CALLS = claiming(
    "INSERT INTO llm_api_calls (llm_id, provider, model, response_time_ms, prompt_tokens, "
    "completion_tokens, estimated_cost, success, called_at, call_id, cycle_id, error) "
    "SELECT r.llm_id, r.provider, r.model, r.response_time_ms, r.prompt_tokens, "
    "r.completion_tokens, r.estimated_cost, r.success, r.called_at, r.call_id, r.cycle_id, "
    "r.error FROM unnest($1::text[], $3::text[], $4::text[], $5::text[], $6::int[], "
    "$7::int[], $8::int[], $9::numeric[], $10::bool[], $11::timestamptz[], $12::text[], "
    "$13::text[], $14::text[]) AS r(msg_id, llm_id, provider, model, response_time_ms, "
    "prompt_tokens, completion_tokens, estimated_cost, success, called_at, call_id, "
    "cycle_id, error) "
    "WHERE r.msg_id IN (SELECT msg_id FROM claimed) ON CONFLICT (call_id) DO NOTHING"
)


async def record_llm_calls(
    conn: Connection, consumer: str, calls: Sequence[tuple[str, LlmCall]]
) -> int:
    """Store each model call of a message ``consumer`` has not applied before (by message
    id), all in one statement; returns how many messages were new."""
    rows = _first_of_each(calls)
    if not rows:
        return 0
    columns = [
        [
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
        ]
        for _, call in rows
    ]
    return int(
        await conn.fetchval(
            _LLM_CALLS,
            [msg_id for msg_id, _ in rows],
            consumer,
            *map(list, zip(*columns, strict=True)),
        )
    )


async def llm_costs(conn: Connection) -> dict[str, Decimal]:
    """Per agent, the estimated cost of its model calls."""
    records = await conn.fetch(
        "SELECT llm_id, sum(estimated_cost) AS v FROM llm_api_calls GROUP BY llm_id"
    )
    return {r["llm_id"]: r["v"] for r in records}


async def llm_usage(conn: Connection) -> dict[str, asyncpg.Record]:
    """Per agent, its model calls: how many, tokens in and out, response time p50/p95 (ms)."""
    records = await conn.fetch(
        "SELECT llm_id, count(*)::int AS calls, "
        "coalesce(sum(prompt_tokens), 0)::bigint AS prompt_tokens, "
        "coalesce(sum(completion_tokens), 0)::bigint AS completion_tokens, "
        "percentile_cont(0.5) WITHIN GROUP (ORDER BY response_time_ms) AS p50, "
        "percentile_cont(0.95) WITHIN GROUP (ORDER BY response_time_ms) AS p95 "
        "FROM llm_api_calls GROUP BY llm_id"
    )
    return {r["llm_id"]: r for r in records}


async def rejection_counts(conn: Connection) -> dict[str, int]:
    """Per agent, its rejected decisions."""
    records = await conn.fetch(
        "SELECT llm_id, count(*)::int AS v FROM rejected_decisions GROUP BY llm_id"
    )
    return {r["llm_id"]: r["v"] for r in records}


async def rejection_reasons(conn: Connection) -> list[asyncpg.Record]:
    """(llm_id, code, n): how often each agent was rejected for each reason."""
    return list(
        await conn.fetch(
            "SELECT llm_id, code, count(*)::int AS n "
            "FROM rejected_decisions, unnest(reason_codes) AS code GROUP BY llm_id, code"
        )
    )
