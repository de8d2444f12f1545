"""Closing a cycle: when every expected agent's verdict is applied, or the deadline passed
(a replay's: its wall-clock budget, ``cycles.expires_at``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from services.common import subjects
from services.common.contracts import AgentOutcome, CycleCompleted
from services.ledger import sql
from services.ledger.chain import ChainLink
from services.ledger.outbox import outbox_row
from services.ledger.sql.cycles import CycleRow


def outcome(agent_id: str, results: list[dict[str, Any]] | None) -> AgentOutcome:
    """One agent's part in a cycle, from its decision's stored results (None: it missed)."""
    if results is None:
        return AgentOutcome(agent_id=agent_id, status="missed")
    kinds = [r.get("outcome") for r in results]
    return AgentOutcome(
        agent_id=agent_id,
        status="applied",
        opened=kinds.count("opened"),
        closed=kinds.count("closed"),
        rejected=kinds.count("rejected"),
    )


async def complete_cycle(
    conn: asyncpg.Connection, cycle_id: str, now: datetime, *, deadline_passed: bool
) -> CycleCompleted | None:
    """Complete ``cycle_id`` if it is running and done (or ``deadline_passed``).

    Runs in the caller's transaction; enqueues ``CycleCompleted`` and returns it.
    """
    row = await sql.cycles.cycle(conn, cycle_id, for_update=True)
    if row is None:
        return None
    return await complete_locked(conn, row, now, deadline_passed=deadline_passed)


async def complete_locked(
    conn: asyncpg.Connection,
    row: CycleRow,
    now: datetime,
    *,
    deadline_passed: bool,
    decided: int | None = None,
) -> CycleCompleted | None:
    """:func:`complete_cycle` for a cycle the caller's transaction has read and locked;
    ``decided``: how many decisions of its expected agents the books hold, when the
    caller knows (else counted)."""
    if not row.running:
        return None
    cycle_id = row.cycle_id
    # Asked after every verdict: count first, read the results only once it is done.
    expected = row.expected_agents
    counted = (
        decided
        if decided is not None
        else await sql.decisions.decided_count(conn, cycle_id, expected)
    )
    if counted < len(set(expected)) and not deadline_passed:
        return None
    links: list[tuple[str, ChainLink]] = []
    if row.data_time:
        # A replay's decisions join the chain now, in agent order: the same data gives
        # the same chain whichever answer came first. Its running cycle's decisions are
        # all outside the chain until then: those linked are all of them (written with
        # the cycle's close).
        unlinked = await sql.decisions.cycle_links(conn, cycle_id)
        links, results = unlinked.links, unlinked.results
    else:
        results = await sql.decisions.decision_results(conn, cycle_id)
    everyone_decided = all(agent in results for agent in expected)
    agents = list(row.expected_agents) + sorted(set(results) - set(row.expected_agents))
    timed_out = not everyone_decided
    duration = max((now - row.started_at).total_seconds(), 0.0)
    event = CycleCompleted(
        cycle_id=cycle_id,
        completed_at=now,
        duration_seconds=duration,
        timed_out=timed_out,
        outcomes=tuple(outcome(a, results.get(a)) for a in agents),
    )
    await sql.cycles.finish_cycle(
        conn,
        cycle_id,
        "timed_out" if timed_out else "completed",
        now,
        duration,
        event=outbox_row(subjects.CYCLE_COMPLETED, cycle_id, event),
        links=links,
    )
    return event
