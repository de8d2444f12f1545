"""Ticks applied once by their own id, marks that only move forward, and a verdict that
opens a position while a tick waits for its account locks."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import asyncpg

from services.common import subjects
from services.common.contracts import MarketTick
from services.common.settings import Settings
from services.ledger.verify import verify
from tests.builders import approved, buy, verdict
from tests.ledger.harness import Ledger, ledger
from tests.ledger.test_ticks import _tick_applied, bar_tick
from tests.support import eventually

BTC = "BTCUSDT"


def _tick(tick_id: str, lg: Ledger, after_s: int, bar: tuple[int, int, int]) -> MarketTick:
    """``bar`` is (mark, high, low) of BTC, stamped ``after_s`` seconds from now."""
    return bar_tick(tick_id, lg, after_s, BTCUSDT=bar)


async def _open_btc_long(lg: Ledger, agent: str, cycle_id: str = "c1") -> None:
    action = buy(BTC, 10, 10).model_copy(update={"stop_loss": Decimal(99000)})
    v = verdict(cycle_id, agent, lg.clock.now(), approved(action))
    await lg.apply(v)


async def _btc(lg: Ledger, agent: str) -> tuple[Decimal, Decimal]:
    row = await lg.db.fetchrow(
        "SELECT current_price, unrealized_pnl FROM positions WHERE llm_id = $1 AND symbol = $2",
        agent,
        BTC,
    )
    return row["current_price"], row["unrealized_pnl"]


async def test_a_tick_copy_under_another_message_id_is_not_applied_again(lg: Ledger) -> None:
    lg.clock.advance(3600)
    await lg.start_cycle("c1", 1, {BTC: Decimal(100000)}, "momentum")
    await _open_btc_long(lg, "momentum")
    late = _tick("late", lg, 120, (100500, 100600, 100400))
    early = _tick("early", lg, 60, (99800, 100000, 99700))
    await _tick_applied(lg, early)
    await _tick_applied(lg, late)
    # A copy of the early tick under another message id, after the late one.
    await lg.publish(subjects.MARKET_TICK, early, f"{early.tick_id}:again")
    await eventually(
        lambda: lg.metric("arena_ledger_duplicates_skipped_total", consumer="ledger-books") == 1,
        what="the copy skipped",
    )
    assert (
        await lg.count(
            "SELECT count(*) FROM processed_messages WHERE msg_id LIKE 'arena.market.tick:%'"
        )
        == 3
    )
    assert await lg.count(
        "SELECT count(*) FROM equity_snapshots WHERE source = 'tick:early'"
    ) == await lg.count("SELECT count(*) FROM llm_accounts")
    # 0.001 BTC marked at 100,500: the copy did not set it back to 99,800.
    assert await _btc(lg, "momentum") == (Decimal(100500), Decimal("0.5"))
    assert await lg.count("SELECT count(*) FROM applied_ticks") == 2
    assert await verify(lg.db) == []


async def test_a_stale_tick_fires_its_exits_but_does_not_move_the_mark_back(lg: Ledger) -> None:
    lg.clock.advance(3600)
    await lg.start_cycle("c1", 1, {BTC: Decimal(100000)}, "momentum")
    await _open_btc_long(lg, "momentum")
    await _tick_applied(lg, _tick("newest", lg, 120, (100500, 100600, 100400)))
    await _tick_applied(lg, _tick("older", lg, 60, (99800, 100000, 99700)))
    assert await _btc(lg, "momentum") == (Decimal(100500), Decimal("0.5"))
    account = await lg.account("momentum")
    assert account["unrealized_pnl"] == Decimal("0.5")
    assert lg.metric("arena_ledger_stale_marks_total") == 1

    # An even older bar went through the stop: the stop fills, once.
    await _tick_applied(lg, _tick("oldest", lg, 30, (99100, 100000, 98900)))
    trade = await lg.db.fetchrow(
        "SELECT exit_price, exit_reason FROM trades WHERE exit_price IS NOT NULL"
    )
    assert tuple(trade) == (Decimal(99000), "stop_loss")
    account = await lg.account("momentum")
    assert (account["open_positions"], account["unrealized_pnl"]) == (0, 0)
    assert await verify(lg.db) == []


async def test_a_verdict_after_a_tick_waiting_for_its_locks_is_applied_after_it(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    async with ledger(make_settings, database_url) as lg:
        lg.clock.advance(3600)
        await lg.start_cycle("c1", 1, {BTC: Decimal(100000)}, "momentum", "random")
        await _open_btc_long(lg, "momentum")

        blocker = await asyncpg.connect(database_url)
        try:
            lock = blocker.transaction()
            await lock.start()
            await blocker.execute("SELECT 1 FROM llm_accounts WHERE llm_id = 'momentum' FOR UPDATE")
            tick = _tick("t1", lg, 0, (101000, 101100, 100900))
            await lg.publish(subjects.MARKET_TICK, tick, tick.tick_id)

            async def tick_waits_for_the_account() -> bool:
                return bool(
                    await lg.db.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND query LIKE '%FROM llm_accounts WHERE llm_id IN (SELECT%"
                        "FOR NO KEY UPDATE%' "
                        "AND pid <> pg_backend_pid()"
                    )
                )

            await eventually(tick_waits_for_the_account, what="the tick waiting for momentum")
            # Published after the tick, the verdict is applied after it, in stream order: it
            # waits behind the tick instead of slipping in while the tick holds its locks.
            v = verdict("c1", "random", lg.clock.now(), approved(buy(BTC, 10, 10)))
            await lg.send_verdict(v)
            assert not await lg.decided(v.verdict_id)
            await lock.commit()
            await lg.wait_decided(v.verdict_id)
        finally:
            await blocker.close()

        await eventually(
            lambda: lg.count("SELECT count(*) FROM equity_snapshots WHERE source = 'tick:t1'"),
            what="the tick applied",
        )
        assert await _btc(lg, "momentum") == (Decimal(101000), Decimal(1))
        # Opened after the tick read the holders: left for the next tick, as if opened after.
        assert await _btc(lg, "random") == (Decimal(100000), Decimal(0))
        assert await verify(lg.db) == []
        await _tick_applied(lg, _tick("t2", lg, 1, (101000, 101100, 100900)))
        assert await _btc(lg, "random") == (Decimal(101000), Decimal(1))
        assert await verify(lg.db) == []
