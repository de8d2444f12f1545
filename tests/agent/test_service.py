"""The agent in-process against a real nats-server, with a stand-in ledger responder."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from services.agent.heartbeat import Heartbeater
from services.agent.identity import resolve_agent
from services.agent.metrics import AgentMetrics
from services.agent.service import AgentService, build, shared_portfolios
from services.agent.strategy import Answer
from services.agent.trader import BaselineTrader
from services.common import channels, subjects
from services.common.bus import Bus
from services.common.clock import ManualClock
from services.common.contracts import (
    Decision,
    Heartbeat,
    MarketSnapshot,
    Portfolio,
    Portfolios,
    PortfoliosQuery,
    TradeAction,
)
from services.common.runner import ServiceContext, ServiceHost
from services.common.settings import Settings
from tests.agent.standins import market, publish, serve_ledger
from tests.builders import NOW, portfolio
from tests.support import collect, eventually, running


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(AGENT_ID="momentum")


async def decisions_on(bus: Bus) -> list[Decision]:
    return await collect(bus, subjects.DECISION_PROPOSED_ALL, Decision)


async def decisions_with_a_ledger(bus: Bus) -> list[Decision]:
    """The stand-in ledger answers the portfolio; the decisions published from now on."""
    await serve_ledger(bus, portfolio())
    return await decisions_on(bus)


def sample(host: ServiceHost, name: str, **labels: str) -> float | None:
    return host.registry.get_sample_value(name, labels)


async def test_publishes_one_decision_per_snapshot(bus: Bus, settings: Settings) -> None:
    asked = await serve_ledger(bus, portfolio())
    decisions = await decisions_on(bus)
    heartbeats = await collect(bus, subjects.agent_heartbeat("momentum"), Heartbeat)
    clock = ManualClock(NOW)
    async with running("agent-momentum", build, settings, clock) as host:
        for n in (1, 2, 3):
            await publish(bus, market(f"c{n}", clock))
        await eventually(lambda: len(decisions) == 3, what="three decisions")
        assert [d.decision_id for d in decisions] == ["c1:momentum", "c2:momentum", "c3:momentum"]
        first = decisions[0]
        assert (first.agent_id, first.model, first.error) == ("momentum", "ema-cross", None)
        assert first.decision_deadline == NOW + timedelta(seconds=60)
        assert [(a.action, a.symbol) for a in first.actions] == [(TradeAction.BUY, "BTCUSDT")]
        assert "EMA20" in first.reasoning
        assert asked == [("momentum",)] * 3
        await eventually(lambda: heartbeats, what="a heartbeat")
        assert (heartbeats[0].agent_id, heartbeats[0].status) == ("momentum", "ok")
        decided = sample(host, "arena_agent_decisions_total", agent="momentum", outcome="decided")
        assert decided == 3
        latency = sample(host, "arena_agent_decision_latency_seconds_count", agent="momentum")
        assert latency == 3


async def test_a_new_agent_answers_the_cycle_opened_while_it_was_starting(
    bus: Bus, settings: Settings
) -> None:
    decisions = await decisions_with_a_ledger(bus)
    clock = ManualClock(NOW)
    await publish(bus, market("c0", clock, seconds_left=10))
    await publish(bus, market("c1", clock))
    async with running("agent-momentum", build, settings, clock):
        await eventually(lambda: decisions, what="the open cycle's decision")
        await publish(bus, market("c2", clock))
        await eventually(lambda: len(decisions) == 2, what="the next cycle's decision")
    # Only the latest snapshot before the start, then the new one; c0 was never seen.
    assert [d.cycle_id for d in decisions] == ["c1", "c2"]


async def test_skips_a_snapshot_past_its_deadline(bus: Bus, settings: Settings) -> None:
    decisions = await decisions_with_a_ledger(bus)
    clock = ManualClock(NOW)
    async with running("agent-momentum", build, settings, clock) as host:
        stale = market("c1", clock, seconds_left=10)
        clock.advance(11)
        await publish(bus, stale)
        await publish(bus, market("c2", clock))
        # Snapshots are handled in order: once c2 is decided, c1 was seen and skipped.
        await eventually(lambda: decisions, what="the fresh snapshot's decision")
        assert [d.cycle_id for d in decisions] == ["c2"]
        assert sample(host, "arena_agent_snapshots_skipped_total", agent="momentum") == 1


async def test_a_replay_snapshot_is_answered_in_its_own_time(bus: Bus, settings: Settings) -> None:
    # A replay's snapshot: its deadline, a year back, is in the data's time.
    asked: list[PortfoliosQuery] = []

    async def answer(query: PortfoliosQuery) -> Portfolios:
        asked.append(query)
        return Portfolios(portfolios=(portfolio(),))

    await bus.serve(channels.LEDGER_QUERY_PORTFOLIOS.subject, PortfoliosQuery, answer)
    decisions = await decisions_on(bus)
    clock = ManualClock(NOW)
    data_at = NOW - timedelta(days=365)
    replayed = market("r1", clock).model_copy(
        update={"taken_at": data_at, "decision_deadline": data_at + timedelta(minutes=4)}
    )
    async with running("agent-momentum", build, settings, clock):
        await publish(bus, replayed.model_copy(update={"data_time": True}))
        await eventually(lambda: decisions, what="the replayed snapshot's decision")
    (decided,) = decisions
    assert decided.decided_at == data_at  # the data's time, not the wall clock's
    assert decided.decision_deadline == data_at + timedelta(minutes=4)
    assert [a.action for a in decided.actions] == [TradeAction.BUY]
    assert [(q.agent_ids, q.cycle_id) for q in asked] == [(("momentum",), "r1")]


async def test_publishes_hold_with_error_when_the_ledger_does_not_answer(
    bus: Bus, settings: Settings
) -> None:
    decisions = await decisions_on(bus)
    clock = ManualClock(NOW)
    async with running("agent-momentum", build, settings, clock) as host:
        await publish(bus, market("c1", clock))
        await eventually(lambda: decisions, what="a forced HOLD")
        (decision,) = decisions
        assert [a.action for a in decision.actions] == [TradeAction.HOLD]
        assert decision.error is not None
        assert "portfolio unavailable" in decision.error
        assert channels.LEDGER_QUERY_PORTFOLIOS.subject in decision.error
        outcome = "portfolio_unavailable"
        assert sample(host, "arena_agent_decisions_total", agent="momentum", outcome=outcome) == 1


class Exploding:
    def decide(self, snapshot: MarketSnapshot, portfolio: Portfolio) -> Answer:
        raise ZeroDivisionError("the model divided by zero")


async def test_a_failing_strategy_becomes_a_hold_and_the_agent_carries_on(
    bus: Bus, settings: Settings
) -> None:
    decisions = await decisions_with_a_ledger(bus)
    clock = ManualClock(NOW)

    async def exploding_agent(ctx: ServiceContext) -> AgentService:
        spec = resolve_agent(ctx.settings)
        return AgentService(
            spec=spec,
            trader=BaselineTrader(Exploding()),
            bus=ctx.bus,
            clock=ctx.clock,
            metrics=AgentMetrics(ctx.registry),
            heartbeat=Heartbeater(ctx.bus, ctx.clock, spec),
            portfolios=shared_portfolios(ctx, [spec]),
        )

    async with running("agent-momentum", exploding_agent, settings, clock):
        await publish(bus, market("c1", clock))
        await publish(bus, market("c2", clock))
        await eventually(lambda: len(decisions) == 2, what="two forced HOLDs")
        for decision in decisions:
            assert [a.action for a in decision.actions] == [TradeAction.HOLD]
            assert decision.error == "strategy failed: ZeroDivisionError: the model divided by zero"
