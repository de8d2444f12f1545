"""What ``make run`` runs: one process per service and per active agent, and how.

Pure: from the line-up to a list of programs, each with its NATS user and its own
environment. Metrics ports start at 9101 in a fixed order (so Prometheus and a user's
bookmarks find them); one that is taken on this machine (another arena, another program)
is replaced by a free port.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from deploy.nats_users import agent_user_name
from services.common.lineup import Lineup

FIRST_METRICS_PORT = 9101


@dataclass(frozen=True)
class Program:
    """One supervised process."""

    name: str
    module: str
    nats_user: str
    env: tuple[tuple[str, str], ...] = ()
    metrics_port: int = 0

    @property
    def command(self) -> tuple[str, ...]:
        return ("-m", self.module)


def programs(
    lineup: Lineup,
    *,
    port_is_free: Callable[[int], bool],
    free_port: Callable[[], int],
) -> tuple[Program, ...]:
    """Every process of the arena, in start order, with a usable metrics port each."""
    planned = [Program("market", "services.market", "market")]
    planned += [
        Program(
            agent_user_name(agent.id),
            "services.agent",
            agent_user_name(agent.id),
            (("AGENT_ID", agent.id),),
        )
        for agent in lineup.active
    ]
    planned += [
        Program("risk", "services.risk", "risk"),
        Program("ledger", "services.ledger", "ledger"),
        Program("gateway", "services.gateway", "gateway"),
    ]
    placed = []
    for offset, program in enumerate(planned):
        port = FIRST_METRICS_PORT + offset
        if not port_is_free(port):
            port = free_port()
        placed.append(Program(program.name, program.module, program.nats_user, program.env, port))
    return tuple(placed)
