"""The risk service: every proposed decision in, one verdict out.

The portfolio is the one the agent decided on (carried in its decision, as the ledger
answered it), or read from the ledger when the decision carries none; when the ledger does not
answer, the decision is retried (the bus redelivers it with back-off) for as long as its
cycle runs, never judged against a guess; once the cycle's deadline has passed it is
answered with a late verdict (every trade rejected, the reason given), so the decision
still reaches the books. Prices and the decision deadline of a cycle come from the
market's snapshot (asked of the market when risk missed it), and "now" from risk's own
clock, or in a replay the snapshot's time: nothing the agent writes about time is trusted.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from services.common import channels, subjects
from services.common.bus import (
    Bus,
    BusError,
    ConsumerSpec,
    Delivery,
    PermanentError,
    RemoteError,
    Unavailable,
)
from services.common.clock import Clock
from services.common.contracts import (
    Decision,
    MarketSnapshot,
    Portfolio,
    PortfolioQuery,
    SnapshotQuery,
)
from services.common.instruments import load_instruments
from services.common.runner import ServiceContext
from services.risk.metrics import RiskMetrics
from services.risk.validator import Validator, late_verdict, trades_nothing

log = logging.getLogger(__name__)

CONSUMER = "risk"
KEPT_SNAPSHOTS = 8


@dataclass(frozen=True)
class CycleFacts:
    """What the market announced for one cycle."""

    prices: dict[str, Decimal]
    deadline: datetime
    # A replay's: risk's "now" for its decisions is the snapshot's time, not the wall clock.
    data_time_now: datetime | None = None

    @classmethod
    def of(cls, snapshot: MarketSnapshot) -> CycleFacts:
        return cls(
            prices={s.symbol: s.last_price for s in snapshot.symbols},
            deadline=snapshot.decision_deadline,
            data_time_now=snapshot.taken_at if snapshot.data_time else None,
        )


class RiskService:
    def __init__(
        self,
        bus: Bus,
        clock: Clock,
        validator: Validator,
        metrics: RiskMetrics,
        request_timeout: float = 2.0,
    ) -> None:
        self._bus = bus
        self._clock = clock
        self._validator = validator
        self._metrics = metrics
        self._request_timeout = request_timeout
        self._started = False
        # The last few cycles' prices and deadlines, as the market announced them.
        self._cycles: OrderedDict[str, CycleFacts] = OrderedDict()

    async def _on_snapshot(self, snapshot: MarketSnapshot) -> None:
        self._cycles[snapshot.cycle_id] = CycleFacts.of(snapshot)
        while len(self._cycles) > KEPT_SNAPSHOTS:
            self._cycles.popitem(last=False)

    async def start(self) -> None:
        # Core (non-durable): a missed snapshot only makes the price rules abstain;
        # the ledger still refuses what it cannot apply.
        await self._bus.subscribe_core(subjects.MARKET_SNAPSHOT, MarketSnapshot, self._on_snapshot)
        await self._bus.consume(
            # Each agent's decisions in order; different agents' side by side (each waits
            # for its own portfolio, and a replay's cycle waits for the slowest).
            ConsumerSpec(CONSUMER, subjects.DECISION_PROPOSED_ALL, concurrent_subjects=True),
            Decision,
            self.handle,
        )
        self._started = True

    async def stop(self) -> None:
        self._started = False

    def readiness(self) -> dict[str, bool]:
        return {"consumer": self._started}

    async def _portfolio(self, decision: Decision) -> Portfolio:
        """The portfolio the agent decided on when it says so (its own account), else the
        ledger's: one question to the ledger per decision, not two. An agent process that
        lied about it would get past this check only: the ledger re-checks every limit
        against its own books when it applies the verdict."""
        seen = decision.portfolio
        if seen is not None and seen.account.agent_id == decision.agent_id:
            return seen
        return await self._bus.ask(
            channels.LEDGER_QUERY_PORTFOLIO,
            PortfolioQuery(agent_id=decision.agent_id, cycle_id=decision.cycle_id),
            timeout=self._request_timeout,
        )

    def _now(self, cycle: CycleFacts | None) -> datetime:
        if cycle is not None and cycle.data_time_now is not None:
            return cycle.data_time_now
        return self._clock.now()

    async def _ask_cycle(self, cycle_id: str) -> CycleFacts | None:
        """A cycle whose snapshot risk missed (it was restarting): the market's copy, else
        None (the price rules abstain, the decision's own deadline stands in)."""
        try:
            reply = await self._bus.ask(
                channels.MARKET_QUERY_SNAPSHOT,
                SnapshotQuery(cycle_id=cycle_id),
                timeout=self._request_timeout,
            )
        except BusError as exc:
            log.warning("the snapshot of cycle %s is unavailable: %s", cycle_id, exc)
            return None
        if reply.snapshot is None or reply.snapshot.cycle_id != cycle_id:
            return None
        await self._on_snapshot(reply.snapshot)
        return self._cycles.get(cycle_id)

    async def handle(self, decision: Decision, delivery: Delivery) -> None:
        speaker = delivery.last_token
        if decision.agent_id != speaker:
            # An agent may only speak for itself: retrying cannot make this valid.
            raise PermanentError(
                f"decision {decision.decision_id} names agent {decision.agent_id!r} "
                f"but was published by {speaker!r}"
            )
        cycle = self._cycles.get(decision.cycle_id) or await self._ask_cycle(decision.cycle_id)
        deadline = cycle.deadline if cycle else decision.decision_deadline
        try:
            # A HOLD is judged by no rule: no question to the ledger for it.
            portfolio = None if trades_nothing(decision) else await self._portfolio(decision)
        except Unavailable as exc:
            now = self._now(cycle)
            if now <= deadline:
                raise  # retried while the cycle runs
            started = self._clock.monotonic()
            self._metrics.late.inc()
            verdict = late_verdict(
                decision,
                now,
                f"the ledger did not answer before the cycle's deadline "
                f"{deadline.isoformat()}: {exc}",
            )
        except RemoteError as exc:
            if exc.reply.code == "not_found":
                raise PermanentError(str(exc)) from exc
            raise
        else:
            started = self._clock.monotonic()
            verdict = self._validator.validate(
                decision,
                portfolio,
                self._now(cycle),
                cycle.prices if cycle else None,
                cycle.deadline if cycle else None,
            )
        self._metrics.record(verdict, self._clock.monotonic() - started)
        await self._bus.publish(
            subjects.decision_verdict(decision.agent_id), verdict, natural_id=verdict.verdict_id
        )
        log.info(
            "verdict %s: %d of %d actions approved",
            verdict.verdict_id,
            sum(r.approved for r in verdict.results),
            len(verdict.results),
            extra={"agent_id": decision.agent_id, "cycle_id": decision.cycle_id},
        )


async def build(ctx: ServiceContext) -> RiskService:
    settings = ctx.settings
    return RiskService(
        bus=ctx.bus,
        clock=ctx.clock,
        validator=Validator.for_symbols(
            settings.limits,
            settings.symbols,
            instruments=load_instruments(settings.instruments_file),
        ),
        metrics=RiskMetrics(ctx.registry),
        request_timeout=settings.request_timeout,
    )
