"""Ticks against real NATS and Postgres: stops, targets, liquidations, funding, equity."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest

from services.common import channels, subjects
from services.common.bus import Unavailable
from services.common.contracts import Action, MarketTick, PortfolioQuery, TickPrice, TradeAction
from services.ledger.verify import verify
from tests.builders import approved, buy, verdict
from tests.ledger.harness import Ledger
from tests.support import eventually

BTC, ETH = "BTCUSDT", "ETHUSDT"


def bar_tick(
    tick_id: str, lg: Ledger, after_s: float = 0, **bars: tuple[int, int, int]
) -> MarketTick:
    """``symbol=(mark, high, low)``, stamped ``after_s`` seconds from the clock's now."""
    return MarketTick(
        tick_id=tick_id,
        at=lg.clock.now() + timedelta(seconds=after_s),
        prices=tuple(
            TickPrice(
                symbol=symbol,
                last_price=Decimal(mark),
                mark_price=Decimal(mark),
                high=Decimal(high),
                low=Decimal(low),
            )
            for symbol, (mark, high, low) in bars.items()
        ),
    )


async def _tick_applied(lg: Ledger, tick: MarketTick) -> None:
    await lg.publish(subjects.MARKET_TICK, tick, tick.tick_id)
    await eventually(
        lambda: lg.count(
            "SELECT count(*) FROM equity_snapshots WHERE source = $1", f"tick:{tick.tick_id}"
        ),
        what=f"tick {tick.tick_id} applied",
    )


async def test_stops_targets_liquidations_and_funding_on_ticks(lg: Ledger) -> None:
    lg.clock.advance(3600)  # 01:00 UTC: no funding time passes while positions are open
    now = lg.clock.now()
    await lg.start_cycle("c1", 1, {BTC: Decimal(100000), ETH: Decimal(3000)}, "momentum")
    long_btc = Action(
        action=TradeAction.BUY,
        symbol=BTC,
        margin_usd=Decimal(10),
        leverage=10,
        stop_loss=Decimal(99000),
        take_profit=Decimal(105000),
    )
    short_eth = Action(action=TradeAction.SELL, symbol=ETH, margin_usd=Decimal(20), leverage=10)
    v = verdict("c1", "momentum", now, approved(long_btc), approved(short_eth))
    await lg.apply(v)
    liq = await lg.db.fetchval("SELECT liquidation_price FROM positions WHERE symbol = $1", ETH)
    # 0.0666 ETH short at 3,000 with 20 USDT: (20 + 199.8) / (0.0666 x 1.004)
    assert liq == Decimal("3287.15169353")

    # One bar touches both BTC's stop and target: the stop (worse) fills.
    # ETH's bar reaches the liquidation price: the short loses its 20 USDT margin.
    t1 = bar_tick("t1", lg, BTCUSDT=(100500, 106000, 98000), ETHUSDT=(3200, 3300, 2990))
    await _tick_applied(lg, t1)
    await _tick_applied(lg, t1)  # the same tick again: nothing changes
    exits = await lg.db.fetch(
        "SELECT symbol, exit_price, realized_pnl, fees, exit_reason FROM trades "
        "WHERE exit_price IS NOT NULL ORDER BY symbol"
    )
    assert [tuple(e) for e in exits] == [
        # 0.001 BTC: (99,000 - 100,000) x 0.001, fee 0.05 % of 99
        (BTC, Decimal(99000), Decimal(-1), Decimal("0.0495"), "stop_loss"),
        (ETH, liq, Decimal(-20), Decimal(0), "liquidation"),
    ]
    statuses = await lg.db.fetch("SELECT symbol, status FROM positions ORDER BY symbol")
    assert [tuple(s) for s in statuses] == [(BTC, "CLOSED"), (ETH, "LIQUIDATED")]
    account = await lg.account("momentum")
    # 100 - 30 margin - 0.05 (BTC open fee) - 0.0999 (ETH open fee) + 10 - 1 - 0.0495
    assert account["balance"] == Decimal("78.8006")
    assert (account["margin_used"], account["losing_trades"]) == (0, 2)
    await eventually(lambda: len([p for p in lg.positions if p.kind == "closed"]) == 2)
    assert {p.exit_reason for p in lg.positions if p.kind == "closed"} == {
        "stop_loss",
        "liquidation",
    }

    # A new position held through 08:00 UTC pays funding once, at the tick's mark.
    await lg.start_cycle("c2", 2, {BTC: Decimal(100000)}, "momentum")
    long_again = Action(action=TradeAction.BUY, symbol=BTC, margin_usd=Decimal(10), leverage=5)
    v2 = verdict("c2", "momentum", now, approved(long_again))
    await lg.apply(v2)
    lg.clock.advance(7 * 3600 + 60)  # 08:01 UTC
    await _tick_applied(lg, bar_tick("t2", lg, BTCUSDT=(101000, 101100, 100900)))
    lg.clock.advance(60)
    await _tick_applied(lg, bar_tick("t3", lg, BTCUSDT=(101000, 101100, 100900)))
    payments = await lg.db.fetch("SELECT amount, funding_rate FROM funding_payments")
    # 0.0005 BTC x 101,000 x 0.0001 (the snapshot's rate), paid by the long
    assert [tuple(p) for p in payments] == [(Decimal("0.00505"), Decimal("0.0001"))]

    assert await verify(lg.db) == []


async def test_a_tick_after_a_gap_pays_every_missed_funding_time_once(lg: Ledger) -> None:
    lg.clock.advance(3600)  # opened at 01:00 UTC, after that day's 00:00 funding
    await lg.start_cycle("c1", 1, {BTC: Decimal(100000)}, "momentum")
    long_btc = Action(action=TradeAction.BUY, symbol=BTC, margin_usd=Decimal(10), leverage=5)
    v = verdict("c1", "momentum", lg.clock.now(), approved(long_btc))
    await lg.apply(v)

    # No tick from 01:00 to 17:01: both 08:00 and 16:00 passed while the long was open.
    lg.clock.advance(16 * 3600 + 60)
    await _tick_applied(lg, bar_tick("t1", lg, BTCUSDT=(100000, 100100, 99900)))
    lg.clock.advance(60)
    await _tick_applied(lg, bar_tick("t2", lg, BTCUSDT=(100000, 100100, 99900)))
    # The next day's 00:00, after another gap: paid once more, nothing paid twice.
    lg.clock.advance(7 * 3600)
    await _tick_applied(lg, bar_tick("t3", lg, BTCUSDT=(100000, 100100, 99900)))

    payments = await lg.db.fetch(
        "SELECT extract(hour FROM funding_time AT TIME ZONE 'UTC')::int AS hour, amount "
        "FROM funding_payments ORDER BY funding_time"
    )
    # 0.0005 BTC x 100,000 x 0.0001 each time
    assert [tuple(p) for p in payments] == [
        (8, Decimal("0.005")),
        (16, Decimal("0.005")),
        (0, Decimal("0.005")),
    ]
    account = await lg.account("momentum")
    assert account["total_funding"] == Decimal("0.015")
    assert lg.metric("arena_ledger_funding_payments_total") == 3
    assert await verify(lg.db) == []


async def test_a_portfolio_asked_for_a_cycle_shows_every_tick_before_its_snapshot(
    lg: Ledger,
) -> None:
    lg.clock.advance(3600)
    await lg.start_cycle("c1", 1, {BTC: Decimal(100000)}, "momentum")
    stop = approved(buy(BTC, 10, 10).model_copy(update={"stop_loss": Decimal(99000)}))
    await lg.apply(verdict("c1", "momentum", lg.clock.now(), stop))
    # Asked before the tick that stops the position out and before cycle c2 starts: the
    # answer waits for c2's snapshot, so it shows the position closed.
    asked = asyncio.create_task(
        lg.bus.ask(
            channels.LEDGER_QUERY_PORTFOLIO,
            PortfolioQuery(agent_id="momentum", cycle_id="c2"),
            timeout=10,
        )
    )
    await lg.publish(subjects.MARKET_TICK, bar_tick("t1", lg, BTCUSDT=(98500, 100100, 98000)), "t1")
    await lg.start_cycle("c2", 2, {BTC: Decimal(98500)}, "momentum")
    portfolio = await asked
    assert portfolio.positions == ()
    assert portfolio.account.balance < Decimal(100) - Decimal("0.9")  # the stop's loss


async def test_a_portfolio_for_a_cycle_never_booked_is_unavailable(lg: Ledger) -> None:
    # The asker hears "unavailable" and asks again, as when the ledger is restarting.
    with pytest.raises(Unavailable, match="not in the books yet"):
        await lg.bus.ask(
            channels.LEDGER_QUERY_PORTFOLIO,
            PortfolioQuery(agent_id="momentum", cycle_id="never"),
            timeout=10,
        )
