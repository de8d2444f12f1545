"""A replay's cycles in the ledger: booked at the data's time, chained in agent order, timed
out on a wall-clock budget (real NATS and Postgres)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from services.common import subjects
from services.common.contracts import FundingSettlement, MarketTick, TickPrice
from services.ledger import chain, sql
from services.ledger.verify import verify
from tests.builders import approved, buy, cycle_started, snapshot, verdict
from tests.ledger.harness import Ledger
from tests.support import eventually

# A year before the ledger's clock: a wall-clock deadline check would call all of it late.
DATA_AT = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=4)
AGENTS = ("momentum", "mean-reversion", "random")


async def _replay_cycle(lg: Ledger, cycle_id: str, sequence: int, at: datetime) -> None:
    update = {"data_time": True, "decision_deadline": at + WINDOW}
    started = cycle_started(cycle_id, sequence, at, AGENTS).model_copy(update=update)
    market = snapshot(cycle_id=cycle_id, at=at, prices={"BTCUSDT": Decimal(95000)})
    await lg.publish(subjects.CYCLE_STARTED, started, cycle_id)
    await lg.publish(subjects.MARKET_SNAPSHOT, market.model_copy(update=update), cycle_id)


async def _status(lg: Ledger, cycle_id: str) -> str:
    return str(await lg.db.fetchval("SELECT status FROM cycles WHERE cycle_id = $1", cycle_id))


async def test_a_replay_cycle_is_booked_in_data_time_and_chained_in_agent_order(
    lg: Ledger,
) -> None:
    await _replay_cycle(lg, "r1", 1, DATA_AT)
    # The answers come in the reverse of the agents' order.
    arrivals = ("random", "momentum", "mean-reversion")
    for n, agent in enumerate(arrivals):
        await lg.apply(verdict("r1", agent, DATA_AT, approved(buy("BTCUSDT", 10, 2))))
        if n == 0:
            # Running: the decision waits outside the chain, and verify says nothing of it.
            assert await lg.db.fetchval("SELECT seq FROM decisions") is None
            assert await verify(lg.db) == []
    await eventually(lambda: _is(lg, "r1", "completed"), what="the replay cycle completed")

    rows = await lg.db.fetch("SELECT llm_id, seq, applied_at FROM decisions ORDER BY seq")
    assert [r["llm_id"] for r in rows] == sorted(AGENTS)
    assert [r["seq"] for r in rows] == [1, 2, 3]
    assert {r["applied_at"] for r in rows} == {DATA_AT}
    opened = await lg.db.fetch("SELECT DISTINCT opened_at FROM positions")
    assert [r["opened_at"] for r in opened] == [DATA_AT]
    # The head is the agent-ordered chain of the stored rows, link for link.
    head = chain.GENESIS
    for seq, _, stored, content in await sql.decisions.chain_rows(lg.db):
        head = chain.digest(head, content)
        assert stored == head, seq
    assert await sql.decisions.chain_head(lg.db) == (3, head)
    assert await verify(lg.db) == []


async def test_a_replay_cycle_waits_its_wall_clock_budget_not_its_data_deadline(
    lg: Ledger,
) -> None:
    await _replay_cycle(lg, "r1", 1, DATA_AT)
    await lg.apply(verdict("r1", "momentum", DATA_AT, approved(buy("BTCUSDT", 10, 2))))
    # Its data deadline passed a year ago; the watcher still leaves it running.
    assert await lg.service.complete_overdue_cycles() == 0
    assert await _status(lg, "r1") == "running"
    lg.clock.advance((WINDOW + timedelta(seconds=6)).total_seconds())  # the budget and grace
    assert await lg.service.complete_overdue_cycles() == 1
    assert await _status(lg, "r1") == "timed_out"
    # Timed out, its decision joined the chain all the same.
    assert await lg.db.fetchval("SELECT seq FROM decisions") == 1
    assert await verify(lg.db) == []


async def _is(lg: Ledger, cycle_id: str, status: str) -> bool:
    return await _status(lg, cycle_id) == status


def _replay_tick(tick_id: str, at: datetime, settlement: FundingSettlement | None) -> MarketTick:
    bar = TickPrice(
        symbol="BTCUSDT",
        last_price=Decimal(95000),
        mark_price=Decimal(95000),
        high=Decimal(95100),
        low=Decimal(94900),
        settlement=settlement,
    )
    return MarketTick(tick_id=tick_id, at=at, prices=(bar,), data_time=True)


async def test_a_replay_pays_funding_at_the_settlements_its_data_carries(lg: Ledger) -> None:
    at = DATA_AT.replace(hour=7, minute=58)
    await _replay_cycle(lg, "r1", 1, at)
    for agent in AGENTS:
        actions = (approved(buy("BTCUSDT", 10, 2)),) if agent == "momentum" else ()
        await lg.apply(verdict("r1", agent, at, *actions))
    # 08:00 passes without a settlement in the data: nothing is charged (the live grid is not).
    await _tick(lg, _replay_tick("t1", at + timedelta(minutes=3), None))
    assert await lg.count("SELECT count(*) FROM funding_payments") == 0
    # A 4-hourly symbol settles at 09:00 (not on the 8-hour grid) at its own rate.
    settled = FundingSettlement(funding_time=DATA_AT.replace(hour=9), rate=Decimal("0.0003"))
    await _tick(lg, _replay_tick("t2", DATA_AT.replace(hour=9, minute=1), settled))
    payment = await lg.db.fetchrow(
        "SELECT llm_id, funding_time, funding_rate, mark_price, amount FROM funding_payments"
    )
    quantity = await lg.db.fetchval("SELECT quantity FROM positions WHERE llm_id = 'momentum'")
    assert tuple(payment) == (
        "momentum",
        DATA_AT.replace(hour=9),
        Decimal("0.0003"),
        Decimal(95000),
        Decimal(95000) * quantity * Decimal("0.0003"),
    )
    assert await verify(lg.db) == []


async def _tick(lg: Ledger, tick: MarketTick) -> None:
    await lg.publish(subjects.MARKET_TICK, tick, tick.tick_id)
    await eventually(
        lambda: lg.count("SELECT count(*) FROM applied_ticks WHERE tick_id = $1", tick.tick_id),
        what=f"tick {tick.tick_id} applied",
    )
