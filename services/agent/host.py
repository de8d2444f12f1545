"""Several line-up entries in one agent process, each still an agent of its own.

``python -m services.agent --agents a,b,c`` (or ``ARENA_AGENT_IDS=a,b,c``). Every hosted
agent keeps its own durable consumer (``agent-<id>``), publishes only on its own subjects
with its own id in the body (what the ledger and the gateway check), beats its own
heartbeat and has its own metric labels; the agents share the process, its NATS
connection (one user allowed exactly their subjects) and its ops endpoint. One agent's
trouble stays its own: a trader that raises becomes that agent's HOLD, and an agent that
cannot start (its consumer refused) is retried in the background while its siblings race.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from services.agent.identity import resolve_agents
from services.agent.metrics import AgentMetrics
from services.agent.service import (
    AgentService,
    agent_service,
    consumer_name,
    decision_log_of,
    shared_portfolios,
)
from services.common.runner import ServiceContext

log = logging.getLogger(__name__)

FIRST_RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 10.0


def process_name(agent_ids: Sequence[str]) -> str:
    """The process (and its NATS user): ``agent-<id>`` alone, ``agents-<first>-<count>``
    for a host. Agent ids hold no ``s-`` right after ``agent``, so no host is named like
    an agent."""
    if not agent_ids:
        raise ValueError("a process hosts at least one agent")
    if len(agent_ids) == 1:
        return consumer_name(agent_ids[0])
    return f"agents-{agent_ids[0]}-{len(agent_ids)}"


class AgentHost:
    """The :class:`~services.runner.Service` of a process hosting several agents."""

    def __init__(
        self,
        agents: Sequence[AgentService],
        *,
        first_retry_seconds: float = FIRST_RETRY_SECONDS,
        max_retry_seconds: float = MAX_RETRY_SECONDS,
    ) -> None:
        self._agents = tuple(agents)
        self._first_retry = first_retry_seconds
        self._max_retry = max_retry_seconds
        self._retries: dict[str, asyncio.Task[None]] = {}

    @property
    def agents(self) -> tuple[AgentService, ...]:
        return self._agents

    async def start(self) -> None:
        results = await asyncio.gather(
            *(agent.start() for agent in self._agents), return_exceptions=True
        )
        for agent, result in zip(self._agents, results, strict=True):
            if isinstance(result, Exception):
                log.error(
                    "agent %s did not start (%s); retrying while the others run",
                    agent.agent_id,
                    result,
                    extra={"agent_id": agent.agent_id},
                )
                self._retries[agent.agent_id] = asyncio.create_task(
                    self._retry(agent), name=f"start:{agent.agent_id}"
                )
            elif isinstance(result, BaseException):
                raise result

    async def _retry(self, agent: AgentService) -> None:
        wait = self._first_retry
        while True:
            await asyncio.sleep(wait)
            try:
                await agent.start()
            except Exception as exc:
                log.warning("agent %s still cannot start: %s", agent.agent_id, exc)
                wait = min(wait * 2, self._max_retry)
                continue
            log.info("agent %s started", agent.agent_id, extra={"agent_id": agent.agent_id})
            return

    async def stop(self) -> None:
        for task in self._retries.values():
            task.cancel()
        for task in self._retries.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        results = await asyncio.gather(
            *(agent.stop() for agent in self._agents), return_exceptions=True
        )
        for agent, result in zip(self._agents, results, strict=True):
            if isinstance(result, Exception):
                log.error("agent %s did not stop cleanly: %s", agent.agent_id, result)

    def readiness(self) -> dict[str, bool]:
        return {
            f"agent:{agent.agent_id}": all(agent.readiness().values()) for agent in self._agents
        }


async def build(ctx: ServiceContext) -> AgentService | AgentHost:
    """The agents this process hosts (``ARENA_AGENT_IDS``, else ``AGENT_ID``)."""
    specs = resolve_agents(ctx.settings)
    metrics = AgentMetrics(ctx.registry)
    decisions = decision_log_of(ctx)
    # One question to the ledger a cycle for all the hosted agents' portfolios.
    portfolios = shared_portfolios(ctx, specs)
    agents = [agent_service(spec, ctx, metrics, decisions, portfolios) for spec in specs]
    return agents[0] if len(agents) == 1 else AgentHost(agents)
