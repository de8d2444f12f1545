"""The ledger under faults of its inputs: nothing real is dead-lettered, nothing is lost.

Postgres refusing connections makes messages wait and come back, not go to the DLQ; a
verdict whose cycle was never announced is still recorded; a message on another agent's
subject is refused; ``verify`` names a proposal that never reached the books; and an
operator lists, re-drives and drops dead letters with ``python -m services.ledger dlq``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlsplit

import asyncpg

from services.common import channels, subjects
from services.common.contracts import LlmCall
from services.common.settings import PROJECT_ROOT, Settings
from services.ledger.verify import verify
from tests.builders import approved, buy, cycle_started, hold, llm_call, tick, verdict
from tests.ledger.harness import Ledger, ledger
from tests.support import eventually, publish_raw

MakeSettings = Callable[..., Settings]
BTC = "BTCUSDT"


def _call(agent: str, call_id: str, at: datetime) -> LlmCall:
    return llm_call(agent, call_id, at, provider="openai", model="gpt-4o")


async def _dead_letters(lg: Ledger) -> int:
    info = await lg.bus.jetstream.stream_info(subjects.DLQ_STREAM)
    return int(info.state.messages)


async def _dlq_cli(nats_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m services.ledger dlq ARGS`` as an operator runs it, in a thread: the
    ledger under test shares this event loop and must go on meanwhile."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "services.ledger", "dlq", *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, "NATS_URL": nats_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_while_postgres_refuses_connections_messages_wait_and_are_applied_after(
    make_settings: MakeSettings, database_url: str, postgres_admin_url: str
) -> None:
    name = urlsplit(database_url).path.lstrip("/")
    async with ledger(make_settings, database_url) as lg:
        now = lg.clock.now()
        await lg.start_cycle("c1", 1, {BTC: Decimal(95000)}, "momentum")
        await eventually(lambda: lg.count("SELECT count(*) FROM market_data"), what="snapshot")
        admin = await asyncpg.connect(postgres_admin_url)
        try:
            # Postgres says no to every new connection and cuts the ledger's open ones.
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()",
                name,
            )
            v = verdict("c1", "momentum", now, approved(buy(BTC, 10, 3)))
            await lg.send_verdict(v)
            await lg.publish(subjects.MARKET_TICK, tick("t1", now, {BTC: Decimal(95100)}), "t1")
            await eventually(
                lambda: (
                    lg.metric("arena_messages_retried_unavailable_total", consumer="ledger-books")
                    >= 2
                ),
                what="the verdict retried while Postgres refuses",
            )
        finally:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            await admin.close()
        # The test's own connection was cut too.
        lg.db = await asyncpg.connect(database_url)
        await lg.wait_decided(v.verdict_id)
        await eventually(
            lambda: lg.count("SELECT count(*) FROM applied_ticks WHERE tick_id = 't1'"),
            what="the tick applied",
        )
        assert await _dead_letters(lg) == 0
        assert await lg.count("SELECT count(*) FROM positions") == 1


async def test_a_verdict_for_a_cycle_never_announced_is_still_recorded(lg: Ledger) -> None:
    now = lg.clock.now()
    v = verdict("never", "momentum", now, approved(buy(BTC, 10, 3)), approved(hold()))
    await lg.send_verdict(v)
    # The ledger waits for the cycle while its inputs may still bring it, then records.
    await eventually(lambda: lg.decided(v.verdict_id), timeout=40, what="recorded")
    codes = await lg.db.fetchval(
        "SELECT reason_codes FROM rejected_decisions WHERE decision_id = $1", v.verdict_id
    )
    assert codes == ["ledger_unknown_cycle"]
    assert await _dead_letters(lg) == 0


async def test_a_message_on_another_agents_subject_is_refused(lg: Ledger) -> None:
    now = lg.clock.now()
    await lg.publish(subjects.llm_call("random"), _call("momentum", "k1", now), "k1")
    await lg.publish(subjects.llm_call("momentum"), _call("momentum", "k2", now), "k2")
    await eventually(
        lambda: lg.count("SELECT count(*) FROM llm_api_calls WHERE call_id = 'k2'"),
        what="the honest call stored",
    )
    assert await lg.count("SELECT count(*) FROM llm_api_calls") == 1
    await eventually(
        lambda: lg.dead_lettered("ledger-llm-calls", "rejected") == 1,
        what="the impostor's call dead-lettered",
    )


async def test_verify_names_a_proposal_that_never_reached_the_books(lg: Ledger) -> None:
    now = lg.clock.now()
    await lg.publish(subjects.CYCLE_STARTED, cycle_started("c1", 1, now, ("momentum",)), "c1")
    v = verdict("c1", "momentum", now, approved(hold()))
    await lg.publish(subjects.decision_proposed("momentum"), v.decision, v.verdict_id)
    await eventually(
        lambda: lg.count("SELECT count(*) FROM proposals"), what="the proposal recorded"
    )
    problems = await verify(lg.db, unbooked_grace=timedelta(0))
    assert [p for p in problems if "never reached the books" in p] == [
        f"momentum: decision {v.verdict_id} was proposed (recorded "
        f"{(await lg.db.fetchval('SELECT recorded_at FROM proposals')).isoformat()}) "
        "but never reached the books"
    ]
    # Still within the grace, a proposal may be on its way: not a problem yet.
    assert await verify(lg.db) == []
    await lg.apply(v)
    assert await verify(lg.db, unbooked_grace=timedelta(0)) == []


async def test_an_operator_lists_re_drives_and_drops_dead_letters(
    make_settings: MakeSettings, database_url: str, nats_url: str
) -> None:
    async with ledger(make_settings, database_url) as lg:
        now = datetime.now(UTC)
        # A call of an agent the ledger has no account for can never be stored: dead letter.
        await lg.publish(subjects.llm_call("ghost"), _call("ghost", "g1", now), "g1")
        await publish_raw(lg.bus, subjects.MARKET_TICK, b'{"tick_id": 1}')

        async def both() -> bool:
            return await _dead_letters(lg) == 2

        await eventually(both, what="both dead letters")

        listed = await _dlq_cli(nats_url, "list")
        assert listed.returncode == 0, listed.stderr
        assert "2 dead letter(s)" in listed.stdout
        assert "arena.llm.call.ghost" in listed.stdout and "reason=rejected" in listed.stdout
        assert "arena.market.tick" in listed.stdout and "reason=malformed" in listed.stdout
        rows = [line for line in listed.stdout.splitlines() if "  consumer=" in line]
        ghost_seq, tick_seq = (
            int(next(row for row in rows if subject in row).split()[0])
            for subject in ("arena.llm.call.ghost", "arena.market.tick")
        )

        # The operator fixes the cause (the account exists now) and re-drives the call.
        await lg.db.execute(
            "INSERT INTO llm_accounts (llm_id, provider, model_name, display_name, balance, "
            "initial_balance) VALUES ('ghost', 'openai', 'gpt-4o', 'Ghost', 100, 100)"
        )
        redriven = await _dlq_cli(nats_url, "replay", str(ghost_seq))
        assert redriven.returncode == 0, redriven.stderr
        assert "re-driven to arena.llm.call.ghost" in redriven.stdout
        await eventually(
            lambda: lg.count("SELECT count(*) FROM llm_api_calls WHERE call_id = 'g1'"),
            what="the re-driven call stored",
        )
        # A malformed request is dead-lettered too, but nobody keeps requests: no re-drive.
        await publish_raw(lg.bus, channels.LEDGER_QUERY_ACCOUNTS.subject, b"[1, 2]")
        await eventually(both, what="the request's dead letter")
        request_seq = max(
            int(row.split()[0])
            for row in (await _dlq_cli(nats_url, "list")).stdout.splitlines()
            if "  consumer=" in row
        )
        refused = await _dlq_cli(nats_url, "replay", str(request_seq))
        assert refused.returncode == 1
        assert "cannot be re-driven; drop it" in refused.stderr
        dropped = await _dlq_cli(nats_url, "drop", "--all")
        assert dropped.returncode == 0 and f"{tick_seq}: dropped" in dropped.stdout
        assert await _dead_letters(lg) == 0
        missing = await _dlq_cli(nats_url, "drop", str(tick_seq))
        assert missing.returncode == 1
        assert f"no dead letter with sequence {tick_seq}" in missing.stderr
