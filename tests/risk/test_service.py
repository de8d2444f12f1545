"""The risk service in-process against a real nats-server, with a stand-in ledger responder."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from nats.aio.msg import Msg

from services.common import channels, subjects
from services.common.bus import Bus
from services.common.clock import ManualClock
from services.common.contracts import (
    MarketSnapshot,
    Portfolio,
    PortfolioQuery,
    SnapshotQuery,
    SnapshotReply,
    Verdict,
)
from services.common.settings import Settings
from services.risk.service import build
from tests.builders import NOW, buy, close, decision, hold, portfolio
from tests.support import collect, eventually, publish_raw, running


async def verdicts_on(bus: Bus) -> list[Verdict]:
    return await collect(bus, subjects.DECISION_VERDICT_ALL, Verdict)


async def serve_ledger(bus: Bus, books: dict[str, Portfolio]) -> None:
    async def answer(query: PortfolioQuery) -> Portfolio:
        return books[query.agent_id]

    await bus.serve(channels.LEDGER_QUERY_PORTFOLIO.subject, PortfolioQuery, answer)


async def dead_letters(bus: Bus) -> list[Msg]:
    letters: list[Msg] = []

    async def collect(msg: Msg) -> None:
        letters.append(msg)

    await bus._nc.subscribe(subjects.dead_letter("risk"), cb=collect)
    return letters


async def test_publishes_approved_and_rejected_verdicts(
    bus: Bus, make_settings: Callable[..., Settings]
) -> None:
    await serve_ledger(bus, {"momentum": portfolio("ETHUSDT")})
    verdicts = await verdicts_on(bus)
    async with running("risk", build, make_settings(), ManualClock(NOW)) as host:
        proposed = decision(buy("BTCUSDT"), buy("SOLUSDT", margin="31"), close("XRPUSDT"))
        await bus.publish(subjects.decision_proposed("momentum"), proposed, proposed.decision_id)
        await eventually(lambda: len(verdicts) == 1, what="one verdict")
        (verdict,) = verdicts
        assert verdict.verdict_id == proposed.decision_id
        assert [(r.approved, [x.code for x in r.reasons]) for r in verdict.results] == [
            (True, []),
            (False, ["margin_out_of_range"]),
            (False, ["no_open_position"]),
        ]
        registry = host.registry
        assert registry.get_sample_value("arena_risk_verdicts_total", {"agent": "momentum"}) == 1
        for code in ("margin_out_of_range", "no_open_position"):
            assert registry.get_sample_value("arena_risk_rejections_total", {"code": code}) == 1
        assert registry.get_sample_value("arena_risk_validation_seconds_count") == 1


async def test_malformed_decision_is_dead_lettered_and_the_next_processed(
    bus: Bus, make_settings: Callable[..., Settings]
) -> None:
    await serve_ledger(bus, {"momentum": portfolio()})
    verdicts = await verdicts_on(bus)
    letters = await dead_letters(bus)
    async with running("risk", build, make_settings(), ManualClock(NOW)):
        await publish_raw(bus, subjects.decision_proposed("momentum"), b'{"actions": "lots"}')
        good = decision(buy("BTCUSDT"), cycle_id="c2")
        await bus.publish(subjects.decision_proposed("momentum"), good, good.decision_id)
        await eventually(lambda: [v.verdict_id for v in verdicts] == ["c2:momentum"])
        await eventually(lambda: len(letters) == 1, what="the dead letter")
        assert letters[0].data == b'{"actions": "lots"}'


async def test_an_agent_speaking_for_another_is_dead_lettered(
    bus: Bus, make_settings: Callable[..., Settings]
) -> None:
    await serve_ledger(bus, {"momentum": portfolio(), "random": portfolio(agent_id="random")})
    verdicts = await verdicts_on(bus)
    letters = await dead_letters(bus)
    async with running("risk", build, make_settings(), ManualClock(NOW)) as host:
        impostor = decision(buy("BTCUSDT"), agent_id="random")
        await bus.publish(subjects.decision_proposed("momentum"), impostor, impostor.decision_id)
        honest = decision(buy("BTCUSDT"), cycle_id="c2")
        await bus.publish(subjects.decision_proposed("momentum"), honest, honest.decision_id)
        await eventually(lambda: [v.verdict_id for v in verdicts] == ["c2:momentum"])
        await eventually(lambda: len(letters) == 1, what="the dead letter")
        assert letters[0].headers is not None
        assert "published by 'momentum'" in letters[0].headers["Arena-Dlq-Error"]
        dead = host.registry.get_sample_value(
            "arena_messages_dead_lettered_total", {"consumer": "risk", "reason": "rejected"}
        )
        assert dead == 1


async def test_waits_for_the_ledger_rather_than_guessing(
    bus: Bus, make_settings: Callable[..., Settings]
) -> None:
    verdicts = await verdicts_on(bus)
    settings = make_settings(ARENA_REQUEST_TIMEOUT=0.2)
    async with running("risk", build, settings, ManualClock(NOW)) as host:
        proposed = decision(buy("BTCUSDT"))
        await bus.publish(subjects.decision_proposed("momentum"), proposed, proposed.decision_id)
        await eventually(
            lambda: host.registry.get_sample_value(
                "arena_messages_failed_total", {"consumer": "risk"}
            ),
            what="a failed attempt while the ledger is away",
        )
        assert verdicts == []
        await serve_ledger(bus, {"momentum": portfolio()})
        await eventually(lambda: len(verdicts) == 1, what="the verdict once the ledger answers")
        assert verdicts[0].results[0].approved


async def test_a_decision_that_only_holds_is_judged_without_asking_the_ledger(
    bus: Bus, make_settings: Callable[..., Settings]
) -> None:
    # No ledger answers here: a decision with a trade would wait for it (see above).
    verdicts = await verdicts_on(bus)
    async with running("risk", build, make_settings(), ManualClock(NOW)):
        for proposed in (decision(hold(), hold()), decision(cycle_id="c2")):
            await bus.publish(
                subjects.decision_proposed("momentum"), proposed, proposed.decision_id
            )
        await eventually(lambda: len(verdicts) == 2, what="the verdicts without a ledger")
    by_id = {v.verdict_id: v for v in verdicts}
    held = by_id["c1:momentum"].results
    assert [(r.index, r.approved, r.reasons) for r in held] == [(0, True, ()), (1, True, ())]
    assert by_id["c2:momentum"].results == ()


async def test_judges_the_deadline_the_market_announced_by_its_own_clock(
    bus: Bus, make_settings: Callable[..., Settings]
) -> None:
    await serve_ledger(bus, {"momentum": portfolio()})
    verdicts = await verdicts_on(bus)
    async with running("risk", build, make_settings(), ManualClock(NOW)):
        announced = MarketSnapshot(
            cycle_id="c1",
            taken_at=NOW - timedelta(minutes=3),
            decision_deadline=NOW - timedelta(seconds=1),
            source="simulator",
            symbols=(),
        )
        # Published (and so delivered to risk's snapshot listener) before the decision.
        await bus.publish(subjects.MARKET_SNAPSHOT, announced, announced.cycle_id)
        # The agent claims it decided early, with an hour to spare: neither is believed.
        boastful = decision(buy("BTCUSDT")).model_copy(
            update={
                "decided_at": NOW - timedelta(hours=1),
                "decision_deadline": NOW + timedelta(hours=1),
            }
        )
        await bus.publish(subjects.decision_proposed("momentum"), boastful, boastful.decision_id)
        # A cycle risk never heard of: the decision's own deadline is the only one there is.
        unknown = decision(buy("BTCUSDT"), cycle_id="c2").model_copy(
            update={"decision_deadline": NOW + timedelta(seconds=1)}
        )
        await bus.publish(subjects.decision_proposed("momentum"), unknown, unknown.decision_id)
        await eventually(lambda: len(verdicts) == 2, what="two verdicts")
        by_id = {v.verdict_id: v for v in verdicts}
        late, fallback = by_id["c1:momentum"], by_id["c2:momentum"]
        assert [r.code for r in late.results[0].reasons] == ["past_deadline"]
        assert late.decided_at == NOW
        assert fallback.results[0].approved


async def test_judges_the_portfolio_the_agent_decided_on_and_asks_the_ledger_otherwise(
    bus: Bus, make_settings: Callable[..., Settings]
) -> None:
    # The ledger's books say ETH is open; the portfolio the agent saw says SOL is.
    asked: list[str] = []

    async def answer(query: PortfolioQuery) -> Portfolio:
        asked.append(query.agent_id)
        return portfolio("ETHUSDT", agent_id=query.agent_id)

    await bus.serve(channels.LEDGER_QUERY_PORTFOLIO.subject, PortfolioQuery, answer)
    verdicts = await verdicts_on(bus)
    async with running("risk", build, make_settings(), ManualClock(NOW)):
        carried = decision(close("SOLUSDT")).model_copy(update={"portfolio": portfolio("SOLUSDT")})
        # Someone else's portfolio proves nothing about this agent: the ledger is asked.
        foreign = decision(close("SOLUSDT"), cycle_id="c2").model_copy(
            update={"portfolio": portfolio("SOLUSDT", agent_id="random")}
        )
        for proposed in (carried, foreign):
            await bus.publish(
                subjects.decision_proposed("momentum"), proposed, proposed.decision_id
            )
        await eventually(lambda: len(verdicts) == 2, what="two verdicts")
    by_id = {v.verdict_id: v for v in verdicts}
    assert by_id[carried.decision_id].results[0].approved
    (rejected,) = by_id[foreign.decision_id].results
    assert not rejected.approved and [r.code for r in rejected.reasons] == ["no_open_position"]
    assert asked == ["momentum"]


async def test_judges_a_replay_at_its_snapshots_time_asking_the_market_when_it_missed_it(
    bus: Bus, make_settings: Callable[..., Settings]
) -> None:
    await serve_ledger(bus, {"momentum": portfolio()})
    verdicts = await verdicts_on(bus)
    data_at = NOW - timedelta(days=365)

    def replayed(cycle_id: str) -> MarketSnapshot:
        return MarketSnapshot(
            cycle_id=cycle_id,
            taken_at=data_at,
            decision_deadline=data_at + timedelta(minutes=4),
            source="replay",
            symbols=(),
            data_time=True,
        )

    async def market_answer(query: SnapshotQuery) -> SnapshotReply:
        return SnapshotReply(snapshot=replayed(str(query.cycle_id)))

    await bus.serve(channels.MARKET_QUERY_SNAPSHOT.subject, SnapshotQuery, market_answer)
    async with running("risk", build, make_settings(), ManualClock(NOW)):
        await bus.publish(subjects.MARKET_SNAPSHOT, replayed("r1"), "r1")
        for cycle_id in ("r1", "r2"):  # r2's snapshot risk never saw: the market has it
            proposed = decision(buy("BTCUSDT"), cycle_id=cycle_id, at=data_at)
            await bus.publish(
                subjects.decision_proposed("momentum"), proposed, proposed.decision_id
            )
        await eventually(lambda: len(verdicts) == 2, what="two verdicts")
    # Both judged at the data's time, a year before the wall clock: neither is late.
    assert {v.verdict_id: v.decided_at for v in verdicts} == {
        "r1:momentum": data_at,
        "r2:momentum": data_at,
    }
    assert all(v.results[0].approved for v in verdicts)
