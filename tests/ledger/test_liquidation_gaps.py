"""Prices that gap through a liquidation price between marks: a position loses its margin,
never more, whether a decision's close or a cycle snapshot's mark finds it there."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest

from services.common.contracts import PositionSide
from services.common.instruments import InstrumentTable
from services.common.settings import Settings
from services.ledger import accounting
from services.ledger.verify import verify
from tests.builders import approved, buy, close, verdict
from tests.ledger.harness import Ledger, ledger
from tests.support import eventually

BTC = "BTCUSDT"
# 0.009 BTC long at 100,000 with 90 of the 100 USDT: (90 - 900) / (0.009 x 0.004 - 0.009)
LIQUIDATION = Decimal("90361.44578313")
# 100 - 90 margin - 0.45 opening fee; a liquidation gives back nothing of the margin.
BALANCE_AFTER = Decimal("9.55")


async def _open_long(lg: Ledger) -> None:
    now = lg.clock.now()
    await lg.start_cycle("c1", 1, {BTC: Decimal(100000)}, "momentum")
    v = verdict("c1", "momentum", now, approved(buy(BTC, 90, 10)))
    await lg.apply(v)
    liquidation = await lg.db.fetchval("SELECT liquidation_price FROM positions")
    assert liquidation == LIQUIDATION


async def _assert_liquidated(lg: Ledger, cycle_id: str) -> None:
    trade = await lg.db.fetchrow(
        "SELECT exit_price, realized_pnl, fees, exit_reason, cycle_id FROM trades "
        "WHERE exit_price IS NOT NULL"
    )
    assert tuple(trade) == (LIQUIDATION, Decimal(-90), Decimal(0), "liquidation", cycle_id)
    assert await lg.db.fetchval("SELECT status FROM positions") == "LIQUIDATED"
    account = await lg.account("momentum")
    assert (account["balance"], account["margin_used"], account["open_positions"]) == (
        BALANCE_AFTER,
        0,
        0,
    )
    await eventually(lambda: any(p.kind == "closed" for p in lg.positions), what="the closed event")
    closed = next(p for p in lg.positions if p.kind == "closed")
    assert (closed.exit_reason, closed.exit_price, closed.realized_pnl, closed.cycle_id) == (
        "liquidation",
        LIQUIDATION,
        Decimal(-90),
        cycle_id,
    )
    assert await verify(lg.db) == []


async def test_a_close_after_a_gap_through_liquidation_books_a_liquidation(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    async with ledger(make_settings, database_url, ARENA_MAX_MARGIN_USD=90) as lg:
        await _open_long(lg)
        now = lg.clock.now()
        # The last price gapped to 50,000 while the mark has not moved: only the close sees
        # it. Closed there, the long would lose 450 of a 99.55 account.
        gapped, mark = {BTC: Decimal(50000)}, {BTC: Decimal(100000)}
        await lg.start_cycle("c2", 2, gapped, "momentum", marks=mark)
        v = verdict("c2", "momentum", now, approved(close(BTC)))
        await lg.apply(v)

        await _assert_liquidated(lg, "c2")
        results = await lg.db.fetchval(
            "SELECT results::text FROM decisions WHERE decision_id = $1", v.verdict_id
        )
        assert '"exit_reason": "liquidation"' in results
        assert lg.metric("arena_ledger_positions_closed_total") == 1
        assert await lg.count("SELECT count(*) FROM rejected_decisions") == 0


async def test_a_snapshot_marking_past_liquidation_liquidates(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    async with ledger(make_settings, database_url, ARENA_MAX_MARGIN_USD=90) as lg:
        await _open_long(lg)
        await lg.start_cycle("c2", 2, {BTC: Decimal(80000)}, "momentum")
        await eventually(
            lambda: lg.count("SELECT count(*) FROM positions WHERE status = 'LIQUIDATED'"),
            what="the long liquidated by the snapshot",
        )

        await _assert_liquidated(lg, "c2")
        assert lg.metric("arena_ledger_snapshot_liquidations_total") == 1
        await eventually(
            lambda: any(a.event_id == "account:mark:c2:momentum" for a in lg.accounts),
            what="the account event of the liquidation",
        )
        # The cycle's equity snapshot already counts the loss: nothing left unrealized.
        equity = await lg.db.fetchval(
            "SELECT equity FROM equity_snapshots WHERE source = 'cycle:c2' AND llm_id = $1",
            "momentum",
        )
        assert equity == BALANCE_AFTER


@pytest.mark.parametrize("symbol", ["BTCUSDT", "ETHUSDT", "SOLUSDT", "DOGEUSDT", "NEWUSDT"])
@pytest.mark.parametrize("side", [PositionSide.LONG, PositionSide.SHORT])
def test_risk_and_the_ledger_compute_the_very_same_liquidation_price(
    symbol: str, side: PositionSide
) -> None:
    # Risk checks a stop against the instrument's price; the ledger stores the opening's.
    instrument = InstrumentTable()[symbol]
    price, margin, leverage = Decimal("0.1234567"), Decimal("37.77"), 7
    opening = accounting.open_position(
        side,
        price,
        margin,
        leverage,
        fee_rate=Decimal("0.0005"),
        maintenance_margin_rate=instrument.maintenance_margin_rate,
        maintenance_amount=instrument.maintenance_amount,
        quantity_step=instrument.step_size,
    )
    risk_view = instrument.liquidation_price(
        long=side is PositionSide.LONG,
        entry_price=price,
        quantity=opening.quantity,
        margin=margin,
    )
    assert risk_view == opening.liquidation_price


def test_is_liquidated_at_and_through_the_price_only() -> None:
    level = Decimal(100)
    assert accounting.is_liquidated(PositionSide.LONG, level, Decimal(100))
    assert accounting.is_liquidated(PositionSide.LONG, level, Decimal(99))
    assert not accounting.is_liquidated(PositionSide.LONG, level, Decimal(101))
    assert accounting.is_liquidated(PositionSide.SHORT, level, Decimal(100))
    assert accounting.is_liquidated(PositionSide.SHORT, level, Decimal(101))
    assert not accounting.is_liquidated(PositionSide.SHORT, level, Decimal(99))
    # A 1x long has no liquidation price above zero: it never liquidates.
    assert not accounting.is_liquidated(PositionSide.LONG, Decimal(0), Decimal(1))
    assert not accounting.is_liquidated(PositionSide.LONG, None, Decimal(1))
