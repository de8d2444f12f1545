"""What ``make run`` runs: one process per service and per agent process, and how.

Pure: from the line-up to a list of programs, each with its NATS user and its own
environment. Every LLM agent gets a process of its own (one provider's crash takes no
other agent with it); baselines are hosted ``ARENA_AGENTS_PER_PROCESS`` to a process
(default 1: a process each), in groups of even size. Metrics ports start at 9101 in a
fixed order (so Prometheus and a user's bookmarks find them); one that is taken on this
machine (another arena, another program) is replaced by a free port.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace

from deploy.render import Workload
from services.agent.host import process_name
from services.agent.identity import BASELINE_PROVIDER
from services.common.lineup import Lineup

FIRST_METRICS_PORT = 9101


@dataclass(frozen=True)
class Program(Workload):
    """One supervised process: an arena process as deployed, with its metrics port here."""

    metrics_port: int = 0

    @property
    def command(self) -> tuple[str, ...]:
        return ("-m", self.module)


def agent_groups(lineup: Lineup, per_process: int = 1) -> tuple[tuple[str, ...], ...]:
    """The active agents by process: each LLM agent alone, the baselines in groups of at
    most ``per_process`` (as many groups as that takes, sizes differing by one at most)."""
    if per_process < 1:
        raise ValueError("a process hosts at least one agent")
    active = lineup.active
    alone = [(a.id,) for a in active if a.provider != BASELINE_PROVIDER]
    baselines = [a.id for a in active if a.provider == BASELINE_PROVIDER]
    count = math.ceil(len(baselines) / per_process)
    size, extra = divmod(len(baselines), count) if count else (0, 0)
    grouped: list[tuple[str, ...]] = []
    start = 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        grouped.append(tuple(baselines[start:end]))
        start = end
    return (*alone, *grouped)


def hosts(groups: tuple[tuple[str, ...], ...]) -> dict[str, tuple[str, ...]]:
    """The processes that host several agents, by name: each needs its own NATS user."""
    return {process_name(group): group for group in groups if len(group) > 1}


def _agent_program(group: tuple[str, ...]) -> Program:
    name = process_name(group)
    env = ("AGENT_ID", group[0]) if len(group) == 1 else ("ARENA_AGENT_IDS", ",".join(group))
    return Program(name, "services.agent", name, (env,))


def programs(
    lineup: Lineup,
    *,
    port_is_free: Callable[[int], bool],
    free_port: Callable[[], int],
    agents_per_process: int = 1,
    reserved: Collection[int] = (),
) -> tuple[Program, ...]:
    """Every process of the arena, in start order, with a usable metrics port each: free,
    none of ``reserved`` (the gateway's), and no two the same (the system may hand out
    a port it handed out a moment ago, the first socket being closed)."""
    planned = [Program("market", "services.market", "market")]
    planned += [_agent_program(g) for g in agent_groups(lineup, agents_per_process)]
    planned += [
        Program("risk", "services.risk", "risk"),
        Program("ledger", "services.ledger", "ledger"),
        Program("gateway", "services.gateway", "gateway"),
    ]
    placed = []
    used = set(reserved)
    for offset, program in enumerate(planned):
        port = FIRST_METRICS_PORT + offset
        if port in used or not port_is_free(port):
            port = free_port()
            while port in used:
                port = free_port()
        used.add(port)
        placed.append(replace(program, metrics_port=port))
    return tuple(placed)
