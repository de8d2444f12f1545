"""``verify`` recomputes every account from its rows: it passes on honest books only."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal

from services.common import channels, subjects
from services.common.contracts import VerifyQuery, VerifyReport
from services.common.settings import PROJECT_ROOT, Settings
from services.ledger.verify import verify
from tests.builders import approved, buy, close, cycle_started, sell, snapshot, verdict
from tests.ledger.harness import Ledger, ledger
from tests.support import eventually

BTC, ETH = "BTCUSDT", "ETHUSDT"


async def _cli_verify(database_url: str, *options: str) -> subprocess.CompletedProcess[str]:
    """``python -m services.ledger verify``, in a thread: a ledger under test may share
    this event loop."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "services.ledger", "verify", *options],
        cwd=PROJECT_ROOT,
        check=False,
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_verify_passes_on_honest_books_and_names_a_tampered_balance(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    async with ledger(make_settings, database_url) as lg:
        agents = ("momentum", "random")
        for n, (btc, eth) in enumerate([(95000, 3000), (97000, 2950), (94000, 3100)], start=1):
            now = lg.clock.now()
            cycle_id = f"c{n}"
            prices = {BTC: Decimal(btc), ETH: Decimal(eth)}
            await lg.publish(
                subjects.CYCLE_STARTED, cycle_started(cycle_id, n, now, agents), cycle_id
            )
            await lg.publish(
                subjects.MARKET_SNAPSHOT,
                snapshot(cycle_id=cycle_id, at=now, prices=prices),
                cycle_id,
            )
            actions = (
                [approved(buy(BTC, 10, 5)), approved(sell(ETH, 12, 3))]
                if n % 2
                else [approved(close(BTC)), approved(close(ETH))]
            )
            for agent in agents:
                v = verdict(cycle_id, agent, now, *actions)
                await lg.send_verdict(v)
        await eventually(lambda: len(lg.completed) == 3, what="three cycles")

        assert await lg.count("SELECT count(*) FROM trades") == 12
        assert await verify(lg.db) == []

        await lg.db.execute("UPDATE llm_accounts SET balance = balance + 1 WHERE llm_id = 'random'")
        problems = await verify(lg.db)
        assert len(problems) == 1
        assert problems[0].startswith("random: balance is ")

    result = await _cli_verify(database_url)
    assert result.returncode == 1, result.stderr
    assert "random: balance" in result.stdout


async def test_verify_cli_says_ok_on_honest_books(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    async with ledger(make_settings, database_url):
        pass  # start-up alone migrates and opens the accounts
    result = await _cli_verify(database_url)
    assert (result.returncode, result.stdout.strip()) == (0, "ok"), result.stderr


async def _cycle(lg: Ledger, n: int, agents: tuple[str, ...]) -> None:
    now = lg.clock.now()
    cycle_id = f"c{n}"
    prices = {BTC: Decimal(95000 + n), ETH: Decimal(3000 + n)}
    await lg.start_cycle(cycle_id, n, prices, *agents)
    actions = [approved(buy(BTC, 10, 5))] if n % 2 else [approved(close(BTC))]
    for agent in agents:
        v = verdict(cycle_id, agent, now, *actions)
        await lg.send_verdict(v)
    await eventually(lambda: len(lg.completed) == n, what=f"cycle {n}")


async def _ask_verify(lg: Ledger, full: bool) -> VerifyReport:
    return await lg.bus.request(
        channels.LEDGER_QUERY_VERIFY.subject, VerifyQuery(full=full), VerifyReport, 10
    )


async def test_verify_goes_on_from_its_checkpoint_and_full_checks_everything(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    agents = ("momentum", "random")
    async with ledger(make_settings, database_url) as lg:
        for n in (1, 2):
            await _cycle(lg, n, agents)
        first = await _ask_verify(lg, full=False)  # no checkpoint yet: from the start
        assert (first.ok, first.full, first.checked_from, first.checked_decisions) == (
            True, False, 0, 4,
        )  # fmt: skip
        for n in (3, 4):
            await _cycle(lg, n, agents)
        second = await _ask_verify(lg, full=False)
        assert (second.ok, second.checked_from, second.checked_decisions) == (True, 4, 4)

        # Altered before the checkpoint: only a full check reads that row again.
        await lg.db.execute("UPDATE decisions SET reasoning = 'edited' WHERE seq = 2")
        assert (await _ask_verify(lg, full=False)).ok
        full = await _ask_verify(lg, full=True)
        assert (full.ok, full.full, full.checked_decisions) == (False, True, 8)
        assert full.problems == (
            "decision c1:random: hash does not match its content (altered row)",
        )
        # A failed check does not move the checkpoint.
        assert (await _ask_verify(lg, full=False)).checked_from == 8

        # Altered after the checkpoint: the next incremental check finds it.
        await _cycle(lg, 5, agents)
        await lg.db.execute("UPDATE decisions SET reasoning = 'edited' WHERE seq = 10")
        later = await _ask_verify(lg, full=False)
        assert (later.ok, later.checked_from, later.checked_decisions) == (False, 8, 2)
        assert later.problems == (
            "decision c5:random: hash does not match its content (altered row)",
        )
        assert (await _ask_verify(lg, full=False)).checked_from == 8  # still there

    result = await _cli_verify(database_url, "--full")
    assert result.returncode == 1, result.stderr
    assert "c1:random: hash does not match" in result.stdout
    assert "c5:random: hash does not match" in result.stdout
