"""One agent: each market snapshot in, exactly one Decision out (or a logged skip).

The agent always answers a cycle it did not skip: when the ledger does not say what it
holds, its model fails or talks nonsense, or it is disabled (no key, key refused, circuit
open), it publishes a HOLD carrying the error, so no cycle ever waits for it. A snapshot
whose decision deadline has passed (a backlog after a restart) is skipped, not decided.
A snapshot delivered again gets the answer already given: the model is not paid twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TypeVar

from services.agent.answered import Answered, RecentAnswers
from services.agent.decision_log import DecisionLog
from services.agent.factory import build_trader
from services.agent.heartbeat import Heartbeater
from services.agent.identity import resolve_agent
from services.agent.metrics import AgentMetrics
from services.agent.portfolios import SharedPortfolios
from services.agent.trader import Outcome, Trader, TraderAnswer
from services.common import channels, subjects
from services.common.bus import Bus, BusError, ConsumerSpec, Delivery, Unavailable
from services.common.clock import Clock
from services.common.contracts import (
    Decision,
    MarketSnapshot,
    Message,
    Portfolio,
    Portfolios,
    PortfoliosQuery,
    SnapshotQuery,
    SnapshotReply,
)
from services.common.lineup import AgentSpec
from services.common.runner import ServiceContext

log = logging.getLogger(__name__)

ReplyT = TypeVar("ReplyT", bound=Message)

# Leave the ledger at least this long to answer, even close to the deadline.
MIN_QUERY_SECONDS = 0.1
# A model may think for minutes: the snapshot stays ours for the whole cycle and then some.
MIN_ACK_WAIT_SECONDS = 30.0


def consumer_name(agent_id: str) -> str:
    return f"agent-{agent_id}"


class AgentService:
    def __init__(
        self,
        *,
        spec: AgentSpec,
        trader: Trader,
        bus: Bus,
        clock: Clock,
        metrics: AgentMetrics,
        heartbeat: Heartbeater,
        portfolios: SharedPortfolios,
        request_timeout: float = 2.0,
        ack_wait_seconds: float = MIN_ACK_WAIT_SECONDS,
        decision_log: DecisionLog | None = None,
        answered: RecentAnswers | None = None,
    ) -> None:
        self._spec = spec
        self._trader = trader
        self._bus = bus
        self._clock = clock
        self._metrics = metrics
        self._heartbeat = heartbeat
        self._portfolios = portfolios
        self._request_timeout = request_timeout
        self._ack_wait = max(MIN_ACK_WAIT_SECONDS, ack_wait_seconds)
        self._decision_log = decision_log
        self._answered = answered or RecentAnswers()
        self._started = False

    async def start(self) -> None:
        # A new agent starts with the latest snapshot: when the market opened a cycle
        # while this process was starting, the agent still answers it before its deadline
        # (older snapshots would only be skipped as past their deadline).
        spec = ConsumerSpec(
            consumer_name(self._spec.id),
            subjects.MARKET_SNAPSHOT,
            start="last",
            ack_wait_seconds=self._ack_wait,
            # One snapshot at a time: no second pull after each for what else is ready.
            batch=1,
        )
        await self._bus.consume(spec, MarketSnapshot, self.handle)
        self._heartbeat.start()
        self._started = True
        reason = self._trader.disabled_reason
        self._metrics.disabled.labels(self._spec.id).set(0 if reason is None else 1)
        if reason is not None:
            log.warning("agent %s is disabled: %s", self._spec.id, reason)

    async def stop(self) -> None:
        self._started = False
        await self._heartbeat.stop()
        await self._trader.close()

    def readiness(self) -> dict[str, bool]:
        return {"consumer": self._started}

    @property
    def agent_id(self) -> str:
        return self._spec.id

    @property
    def disabled_reason(self) -> str | None:
        return self._trader.disabled_reason

    async def handle(self, snapshot: MarketSnapshot, delivery: Delivery) -> None:
        agent = self._spec.id
        received = self._clock.monotonic()
        now = self._clock.now()
        was_disabled = self._trader.disabled_reason
        entry = self._answered.get(snapshot.cycle_id)
        # A replay's deadline is in the data's time: its snapshot is always answered.
        if entry is None and not snapshot.data_time and now >= snapshot.decision_deadline:
            self._metrics.skipped.labels(agent).inc()
            log.warning(
                "skipping snapshot %s: its deadline %s has passed",
                snapshot.cycle_id,
                snapshot.decision_deadline.isoformat(),
                extra={"agent_id": agent, "cycle_id": snapshot.cycle_id},
            )
            return
        if entry is None:
            decision, answer = await self._decide(snapshot, delivery.num_delivered)
            # Remembered before publishing: if a publish fails, the redelivered snapshot
            # gets this same answer again instead of a second (paid) model call.
            entry = Answered(decision, answer)
            self._answered.remember(snapshot.cycle_id, entry)
        else:
            log.info(
                "snapshot %s delivered again: re-publishing the answer already given",
                snapshot.cycle_id,
                extra={"agent_id": agent, "cycle_id": snapshot.cycle_id},
            )
        decision, answer = entry.decision, entry.answer
        # Calls first: the ledger stores them whatever becomes of the decision. Publishing
        # them again is harmless: the bus and the ledger drop duplicates by id.
        for call in answer.calls:
            await self._bus.publish(subjects.llm_call(agent), call, natural_id=call.call_id)
        # A publish failure (NATS away) propagates: the bus redelivers the snapshot and the
        # answer given is published then, even past the deadline: a decision once made
        # always reaches the books (late, if it must).
        await self._bus.publish(
            subjects.decision_proposed(agent), decision, natural_id=decision.decision_id
        )
        if entry.published:
            return
        entry.published = True
        for call in answer.calls:
            self._metrics.record_call(call)
        self._account(answer, received)
        if self._decision_log is not None:
            self._decision_log.append(decision)
        if self._trader.disabled_reason != was_disabled:
            await self._heartbeat.beat_now()
        log.info(
            "decision %s: %s%s",
            decision.decision_id,
            ", ".join(f"{a.action.value} {a.symbol or ''}".strip() for a in decision.actions),
            f" ({decision.error})" if decision.error else "",
            extra={
                "agent_id": agent,
                "cycle_id": snapshot.cycle_id,
                "outcome": answer.outcome.value,
            },
        )

    def _account(self, answer: TraderAnswer, received: float) -> None:
        agent = self._spec.id
        self._metrics.decisions.labels(agent, answer.outcome.value).inc()
        self._metrics.latency.labels(agent).observe(self._clock.monotonic() - received)
        if answer.parse_failures:
            self._metrics.parse_failures.labels(agent).inc(answer.parse_failures)
        disabled = self._trader.disabled_reason is not None
        self._metrics.disabled.labels(agent).set(1 if disabled else 0)

    async def _decide(
        self, snapshot: MarketSnapshot, delivery: int
    ) -> tuple[Decision, TraderAnswer]:
        announced = snapshot
        reason = self._trader.disabled_reason
        if reason is not None:
            # No portfolio needed to say "not today": answer at once.
            answer = TraderAnswer.hold(Outcome.DISABLED, f"disabled: {reason}")
            return answer.decision(self._spec, announced, self._decided_at(announced)), answer
        snapshot = self._on_wall_clock(snapshot)
        try:
            portfolio = await self._portfolio(snapshot)
        except BusError as exc:
            error = f"portfolio unavailable: {exc}"
            answer = TraderAnswer.hold(Outcome.PORTFOLIO_UNAVAILABLE, error)
            return answer.decision(self._spec, announced, self._decided_at(announced)), answer
        if snapshot.candles_omitted and self._trader.reads_candles:
            full = await self._with_candles(snapshot)
            snapshot = full.model_copy(update={"decision_deadline": snapshot.decision_deadline})
        try:
            answer = await self._trader.decide(snapshot, portfolio, delivery=delivery)
        except Exception as exc:
            # A trader is built never to raise; if one does, the cycle still gets its answer.
            log.exception("trader of %s raised", self._spec.id)
            answer = TraderAnswer.hold(
                Outcome.STRATEGY_ERROR, f"strategy failed: {type(exc).__name__}: {exc}"
            )
        decided_at = self._decided_at(announced)
        return answer.decision(self._spec, announced, decided_at, portfolio), answer

    def _decided_at(self, snapshot: MarketSnapshot) -> datetime:
        """Now; in a replay the snapshot's time, whatever the wall clock says meanwhile."""
        return snapshot.taken_at if snapshot.data_time else self._clock.now()

    def _on_wall_clock(self, snapshot: MarketSnapshot) -> MarketSnapshot:
        """The snapshot with the deadline the agent works to on the wall clock: a replay's
        is in the data's time, so it gets its decision window from now (the model's
        timeout and the peers' retries are counted against it)."""
        if not snapshot.data_time:
            return snapshot
        window = snapshot.decision_deadline - snapshot.taken_at
        return snapshot.model_copy(update={"decision_deadline": self._clock.now() + window})

    async def _with_candles(self, snapshot: MarketSnapshot) -> MarketSnapshot:
        """The full snapshot of this cycle from the market (the event leaves the candles out).

        A market that no longer holds it (it restarted) or stays unreachable leaves the
        snapshot as it came: the prompt then shows the indicators without recent closes,
        and the decision's prompt records that.
        """
        query = SnapshotQuery(cycle_id=snapshot.cycle_id)

        def ask(timeout: float) -> Awaitable[SnapshotReply]:
            return self._bus.ask(channels.MARKET_QUERY_SNAPSHOT, query, timeout=timeout)

        try:
            reply = await self._retrying(snapshot, ask)
        except BusError as exc:
            problem = str(exc)
        else:
            if reply.snapshot is not None and reply.snapshot.cycle_id == snapshot.cycle_id:
                return reply.snapshot
            problem = "the market answered without it"
        log.warning(
            "candles of cycle %s unavailable (%s): deciding on the snapshot without them",
            snapshot.cycle_id,
            problem,
            extra={"agent_id": self._spec.id, "cycle_id": snapshot.cycle_id},
        )
        return snapshot

    async def _portfolio(self, snapshot: MarketSnapshot) -> Portfolio:
        def ask(timeout: float) -> Awaitable[Portfolio]:
            return self._portfolios.portfolio(self._spec.id, snapshot.cycle_id, timeout)

        return await self._retrying(snapshot, ask)

    async def _retrying(
        self, snapshot: MarketSnapshot, ask: Callable[[float], Awaitable[ReplyT]]
    ) -> ReplyT:
        """A question to a peer service (``ask`` with a timeout), asked again while there
        is time.

        A ledger or market restarting for a few seconds should not cost the agent its
        cycle: the question is repeated with back-off as long as the answer would still
        leave the model its own time (``timeout_seconds``) before the deadline.
        """
        wait = 0.25
        while True:
            remaining = (snapshot.decision_deadline - self._clock.now()).total_seconds()
            timeout = max(MIN_QUERY_SECONDS, min(self._request_timeout, remaining))
            try:
                return await ask(timeout)
            except Unavailable:
                left = (snapshot.decision_deadline - self._clock.now()).total_seconds()
                if left - wait - self._request_timeout < self._spec.timeout_seconds:
                    raise
                await asyncio.sleep(wait)
                wait = min(wait * 2, 2.0)


def shared_portfolios(ctx: ServiceContext, specs: Sequence[AgentSpec]) -> SharedPortfolios:
    """The portfolios of the agents of ``specs``, asked for together on ``ctx``'s bus."""

    def ask(query: PortfoliosQuery, timeout: float) -> Awaitable[Portfolios]:
        return ctx.bus.ask(channels.LEDGER_QUERY_PORTFOLIOS, query, timeout=timeout)

    return SharedPortfolios([spec.id for spec in specs], ask)


def agent_service(
    spec: AgentSpec,
    ctx: ServiceContext,
    metrics: AgentMetrics,
    decision_log: DecisionLog | None,
    portfolios: SharedPortfolios,
) -> AgentService:
    """One line-up entry as an agent on ``ctx``'s bus (a process may host several)."""
    settings = ctx.settings
    trader = build_trader(spec, settings, ctx.clock, os.environ)
    return AgentService(
        spec=spec,
        trader=trader,
        bus=ctx.bus,
        clock=ctx.clock,
        metrics=metrics,
        heartbeat=Heartbeater(
            ctx.bus, ctx.clock, spec, disabled_reason=lambda: trader.disabled_reason
        ),
        portfolios=portfolios,
        request_timeout=settings.request_timeout,
        ack_wait_seconds=settings.cycle_seconds + MIN_ACK_WAIT_SECONDS,
        decision_log=decision_log,
    )


def decision_log_of(ctx: ServiceContext) -> DecisionLog | None:
    log_dir = ctx.settings.log_dir
    return DecisionLog.in_dir(log_dir) if log_dir else None


async def build(ctx: ServiceContext) -> AgentService:
    """The agent ``AGENT_ID`` names (:func:`services.agent.host.build` hosts several)."""
    spec = resolve_agent(ctx.settings)
    portfolios = shared_portfolios(ctx, [spec])
    return agent_service(spec, ctx, AgentMetrics(ctx.registry), decision_log_of(ctx), portfolios)
