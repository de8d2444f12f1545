"""One agent: each market snapshot in, exactly one Decision out (or a logged skip).

The agent always answers a cycle it did not skip: when the ledger does not say what it
holds, or its strategy fails, it publishes a HOLD carrying the error. A snapshot whose
decision deadline has passed (a backlog after a restart) is skipped, not decided.
"""

from __future__ import annotations

import logging

from services.agent.decisions import Outcome, decide, forced_hold
from services.agent.heartbeat import Heartbeater
from services.agent.identity import build_strategy, resolve_agent
from services.agent.metrics import AgentMetrics
from services.agent.strategy import Strategy
from services.common import subjects
from services.common.bus import Bus, BusError, ConsumerSpec, Delivery
from services.common.clock import Clock
from services.common.contracts import Decision, MarketSnapshot, Portfolio, PortfolioQuery
from services.common.lineup import AgentSpec
from services.common.runner import ServiceContext

log = logging.getLogger(__name__)

# Leave the ledger at least this long to answer, even close to the deadline.
MIN_QUERY_SECONDS = 0.1


def consumer_name(agent_id: str) -> str:
    return f"agent-{agent_id}"


class AgentService:
    def __init__(
        self,
        *,
        spec: AgentSpec,
        strategy: Strategy,
        bus: Bus,
        clock: Clock,
        metrics: AgentMetrics,
        heartbeat: Heartbeater,
        request_timeout: float = 2.0,
    ) -> None:
        self._spec = spec
        self._strategy = strategy
        self._bus = bus
        self._clock = clock
        self._metrics = metrics
        self._heartbeat = heartbeat
        self._request_timeout = request_timeout
        self._started = False

    async def start(self) -> None:
        # New agents start from now: a replay of old snapshots would only be skipped.
        spec = ConsumerSpec(
            consumer_name(self._spec.id), subjects.MARKET_SNAPSHOT, deliver_new_only=True
        )
        await self._bus.consume(spec, MarketSnapshot, self.handle)
        self._heartbeat.start()
        self._started = True

    async def stop(self) -> None:
        self._started = False
        await self._heartbeat.stop()

    def readiness(self) -> dict[str, bool]:
        return {"consumer": self._started}

    async def handle(self, snapshot: MarketSnapshot, delivery: Delivery) -> None:
        agent = self._spec.id
        received = self._clock.monotonic()
        now = self._clock.now()
        if now >= snapshot.decision_deadline:
            self._metrics.skipped.labels(agent).inc()
            log.warning(
                "skipping snapshot %s: its deadline %s has passed",
                snapshot.cycle_id,
                snapshot.decision_deadline.isoformat(),
                extra={"agent_id": agent, "cycle_id": snapshot.cycle_id},
            )
            return
        decision, outcome = await self._decide(snapshot)
        # A publish failure propagates: the bus redelivers the snapshot (and the deadline
        # check above decides whether it is still worth answering).
        await self._bus.publish(
            subjects.decision_proposed(agent), decision, natural_id=decision.decision_id
        )
        self._metrics.decisions.labels(agent, outcome.value).inc()
        self._metrics.latency.labels(agent).observe(self._clock.monotonic() - received)
        log.info(
            "decision %s: %s",
            decision.decision_id,
            ", ".join(f"{a.action.value} {a.symbol or ''}".strip() for a in decision.actions),
            extra={"agent_id": agent, "cycle_id": snapshot.cycle_id, "outcome": outcome.value},
        )

    async def _decide(self, snapshot: MarketSnapshot) -> tuple[Decision, Outcome]:
        remaining = (snapshot.decision_deadline - self._clock.now()).total_seconds()
        timeout = max(MIN_QUERY_SECONDS, min(self._request_timeout, remaining))
        try:
            portfolio = await self._bus.request(
                subjects.LEDGER_QUERY_PORTFOLIO,
                PortfolioQuery(agent_id=self._spec.id),
                Portfolio,
                timeout=timeout,
            )
        except BusError as exc:
            error = f"portfolio unavailable: {exc}"
            return (
                forced_hold(self._spec, snapshot, self._clock.now(), error),
                Outcome.PORTFOLIO_UNAVAILABLE,
            )
        return decide(self._strategy, self._spec, snapshot, portfolio, self._clock.now())


async def build(ctx: ServiceContext) -> AgentService:
    settings = ctx.settings
    spec = resolve_agent(settings)
    return AgentService(
        spec=spec,
        strategy=build_strategy(spec, settings),
        bus=ctx.bus,
        clock=ctx.clock,
        metrics=AgentMetrics(ctx.registry),
        heartbeat=Heartbeater(ctx.bus, ctx.clock, spec),
        request_timeout=settings.request_timeout,
    )
