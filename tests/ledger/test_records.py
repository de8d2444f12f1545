"""Proposals and model calls are stored in one statement with their claims: each message
once (a copy in the same batch or a later one changes nothing), all or nothing."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import asyncpg
import pytest

from services.ledger import sql
from services.ledger.sql.decisions import record_llm_calls, record_proposals
from services.ledger.sql.positions import VerdictKey
from tests.builders import decision, hold, llm_call
from tests.ledger.harness import Ledger

CONSUMER = "records-test"


async def test_each_proposal_is_stored_once_whatever_copies_arrive(lg: Ledger) -> None:
    first = decision(hold(), agent_id="momentum")
    second = decision(hold(), agent_id="random")
    # A copy of the first message in the same batch: one new message, one proposal.
    assert await record_proposals(lg.db, CONSUMER, [("m1", first), ("m1", first)]) == 1
    assert await record_proposals(lg.db, CONSUMER, [("m1", first), ("m2", second)]) == 1
    assert await record_proposals(lg.db, CONSUMER, []) == 0
    stored = await lg.db.fetch("SELECT decision_id, llm_id FROM proposals ORDER BY llm_id")
    assert [(r["decision_id"], r["llm_id"]) for r in stored] == [
        (first.decision_id, "momentum"),
        (second.decision_id, "random"),
    ]
    claimed = await lg.count(
        "SELECT count(*) FROM processed_messages WHERE consumer = $1", CONSUMER
    )
    assert claimed == 2


async def test_model_calls_keep_every_field_and_fail_with_their_claims(lg: Ledger) -> None:
    now = lg.clock.now()
    call = llm_call("momentum", "k1", now, response_time_ms="120", estimated_cost="0.0012345")
    assert await record_llm_calls(lg.db, CONSUMER, [("m1", call), ("m1", call)]) == 1
    row = await lg.db.fetchrow("SELECT * FROM llm_api_calls")
    assert (row["llm_id"], row["call_id"], row["called_at"]) == ("momentum", "k1", now)
    assert (row["response_time_ms"], row["estimated_cost"]) == (120, Decimal("0.0012345"))
    assert (row["prompt_tokens"], row["completion_tokens"]) == (
        call.prompt_tokens,
        call.completion_tokens,
    )
    assert (row["success"], row["cycle_id"], row["error"]) == (True, call.cycle_id, None)
    # A call of an agent without an account fails as a whole: its claim is not kept, so
    # the message can be applied once the account exists.
    ghost = llm_call("ghost", "g1", now)
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await record_llm_calls(lg.db, CONSUMER, [("m2", ghost), ("m3", call)])
    claims = "SELECT count(*) FROM processed_messages WHERE msg_id = ANY($1::text[])"
    assert await lg.count(claims, ["m2", "m3"]) == 0
    assert await lg.count("SELECT count(*) FROM llm_api_calls") == 1


async def test_records_are_written_while_the_books_hold_the_account(
    lg: Ledger, database_url: str
) -> None:
    # The books lock an account for a verdict while another transaction stores a record
    # that refers to it: the record's foreign key must not wait for (nor deadlock with)
    # the books' lock.
    books = await asyncpg.connect(database_url)
    try:
        async with books.transaction():
            assert await sql.accounts.account(books, "momentum", for_update=True) is not None
            await sql.positions.verdict_inputs(books, [VerdictKey("momentum", "c1", "d1")])
            stored = record_proposals(lg.db, CONSUMER, [("m1", decision(hold()))])
            assert await asyncio.wait_for(stored, 5) == 1
            call = llm_call("momentum", "k1", lg.clock.now())
            assert await asyncio.wait_for(record_llm_calls(lg.db, CONSUMER, [("m2", call)]), 5)
    finally:
        await books.close()
