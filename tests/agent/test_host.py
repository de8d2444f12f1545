"""One process hosting several agents, in-process against a real nats-server.

Each hosted agent answers with its own identity (its id in the body and on the subject),
beats its own heartbeat and counts under its own metric label; an agent whose trader
raises or never answers leaves its siblings deciding.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable

import pytest

from services.agent.heartbeat import Heartbeater
from services.agent.host import AgentHost, build, process_name
from services.agent.identity import resolve_agents
from services.agent.metrics import AgentMetrics
from services.agent.service import AgentService, agent_service, shared_portfolios
from services.agent.strategy import Answer
from services.agent.trader import BaselineTrader, Trader, TraderAnswer
from services.common import subjects
from services.common.bus import Bus
from services.common.clock import ManualClock
from services.common.contracts import (
    Decision,
    Heartbeat,
    MarketSnapshot,
    Portfolio,
    TradeAction,
)
from services.common.lineup import AgentSpec
from services.common.runner import ServiceContext
from services.common.settings import Settings
from tests.agent.standins import market, publish, serve_ledger
from tests.builders import NOW
from tests.support import collect, eventually, running

HOSTED = ("momentum", "random", "mean-reversion")


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(ARENA_AGENT_IDS=",".join(HOSTED))


async def decisions_on(bus: Bus) -> list[Decision]:
    """Decisions as the ledger takes them: one on another agent's subject is refused."""
    return await collect(bus, subjects.DECISION_PROPOSED_ALL, Decision, lambda d: d.agent_id)


def test_a_host_is_named_apart_from_any_agent() -> None:
    assert process_name(["momentum"]) == "agent-momentum"
    assert process_name(HOSTED) == "agents-momentum-3"


async def test_each_hosted_agent_decides_as_itself(bus: Bus, settings: Settings) -> None:
    asked = await serve_ledger(bus)
    decisions = await decisions_on(bus)
    heartbeats = await collect(bus, subjects.AGENT_HEARTBEAT_ALL, Heartbeat, lambda h: h.agent_id)
    clock = ManualClock(NOW)
    async with running(process_name(HOSTED), build, settings, clock) as host:
        assert isinstance(host.service, AgentHost)
        assert host.service.readiness() == {f"agent:{a}": True for a in HOSTED}
        for n in (1, 2):
            await publish(bus, market(f"c{n}", clock))
        await eventually(lambda: len(decisions) == 6, what="two decisions from each agent")
        assert sorted(d.decision_id for d in decisions) == sorted(
            f"c{n}:{a}" for n in (1, 2) for a in HOSTED
        )
        assert {d.agent_id: d.model for d in decisions} == {
            "momentum": "ema-cross",
            "random": "random",
            "mean-reversion": "rsi-reversion",
        }
        # One question to the ledger a cycle, for all three portfolios.
        assert asked == [HOSTED, HOSTED]
        await eventually(
            lambda: {h.agent_id for h in heartbeats} == set(HOSTED), what="three heartbeats"
        )
        for agent in HOSTED:
            counted = host.registry.get_sample_value(
                "arena_agent_decision_latency_seconds_count", {"agent": agent}
            )
            assert counted == 2


class Exploding:
    def decide(self, snapshot: MarketSnapshot, portfolio: Portfolio) -> Answer:
        raise ZeroDivisionError("the model divided by zero")


class Stuck(BaselineTrader):
    """A trader that never answers (a provider that hangs past every timeout)."""

    def __init__(self) -> None:
        super().__init__(Exploding())
        self.asked = 0

    async def decide(
        self, snapshot: MarketSnapshot, portfolio: Portfolio, *, delivery: int = 1
    ) -> TraderAnswer:
        self.asked += 1
        await asyncio.Event().wait()
        raise AssertionError("never answers")


async def test_a_failing_agent_leaves_its_siblings_deciding(bus: Bus, settings: Settings) -> None:
    await serve_ledger(bus)
    decisions = await decisions_on(bus)
    clock = ManualClock(NOW)
    stuck = Stuck()

    async def host_with_trouble(ctx: ServiceContext) -> AgentHost:
        momentum, random, reversion = resolve_agents(ctx.settings)
        metrics = AgentMetrics(ctx.registry)

        # Every hosted agent shares the host's bus, clock and metrics.
        portfolios = shared_portfolios(ctx, [momentum, random, reversion])
        hosted = functools.partial(
            AgentService, bus=ctx.bus, clock=ctx.clock, metrics=metrics, portfolios=portfolios
        )

        def with_trader(spec: AgentSpec, trader: Trader) -> AgentService:
            return hosted(spec=spec, trader=trader, heartbeat=Heartbeater(ctx.bus, ctx.clock, spec))

        return AgentHost(
            [
                agent_service(momentum, ctx, metrics, None, portfolios),
                with_trader(random, BaselineTrader(Exploding())),
                with_trader(reversion, stuck),
            ]
        )

    async with running(process_name(HOSTED), host_with_trouble, settings, clock):
        for n in (1, 2, 3):
            await publish(bus, market(f"c{n}", clock))
        await eventually(lambda: len(decisions) == 6, what="the two siblings' decisions")
        by_agent = {agent: [d for d in decisions if d.agent_id == agent] for agent in HOSTED}
        assert [d.cycle_id for d in by_agent["momentum"]] == ["c1", "c2", "c3"]
        assert [(a.action, a.symbol) for a in by_agent["momentum"][0].actions] == [
            (TradeAction.BUY, "BTCUSDT")
        ]
        assert [d.cycle_id for d in by_agent["random"]] == ["c1", "c2", "c3"]
        assert all(d.error and "ZeroDivisionError" in d.error for d in by_agent["random"])
        assert by_agent["mean-reversion"] == []
        assert stuck.asked == 1
