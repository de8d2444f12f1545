"""Who may publish and subscribe to what on NATS: one user per service and per agent.

Pure: from the line-up and the services' durable consumer names to a list of users. Each
user may publish only its own events (an agent only its own
``arena.decision.proposed.<id>``, a process hosting several agents only theirs, only risk
verdicts, only the ledger ledger events), plus the JetStream API calls its own consumers
need: it may look at the streams, never create, change or delete one; only the market
reads and writes the market's state bucket. ``admin`` manages the streams and the bucket
and reads the dead letters (``python -m services.ledger streams``, ``python -m
services.ledger dlq``); ``tooling`` reads everything and publishes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from services.common import subjects
from services.common.lineup import Lineup

INBOX = "_INBOX.>"
LEDGER_QUERIES = "arena.ledger.query.>"
MARKET_QUERIES = "arena.market.query.>"
SCHEDULER = "arena.scheduler.>"
TOOLING_USER = "tooling"
ADMIN_USER = "admin"


@dataclass(frozen=True)
class NatsUser:
    name: str
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    # Responders answer on the requester's reply subject, whatever it is.
    allow_responses: bool = False
    deny_publish: tuple[str, ...] = ()

    @property
    def password_variable(self) -> str:
        """The environment variable holding this user's password (nats-server and clients)."""
        return "NATS_PASSWORD_" + self.name.upper().replace("-", "_")


def agent_user_name(agent_id: str) -> str:
    return f"agent-{agent_id}"


MARKET_STATE_STREAM = f"KV_{subjects.MARKET_STATE_BUCKET}"


def _stream_api() -> tuple[str, ...]:
    """What a service's start-up check of the streams calls: looking, never changing."""
    calls = ["$JS.API.INFO"]
    calls += [f"$JS.API.STREAM.INFO.{s}" for s in (subjects.STREAM, subjects.DLQ_STREAM)]
    # The market's state bucket: looked up (created by the administrator, like the streams).
    calls.append(f"$JS.API.STREAM.INFO.{MARKET_STATE_STREAM}")
    return tuple(calls)


def _market_state_api() -> tuple[str, ...]:
    """Reading (``get``) and writing (``put``) keys of the market's state bucket."""
    return (
        f"$JS.API.STREAM.MSG.GET.{MARKET_STATE_STREAM}",
        f"$KV.{subjects.MARKET_STATE_BUCKET}.>",
    )


def _consumer_api(durables: Iterable[str]) -> tuple[str, ...]:
    """What ``Bus.consume`` calls for its own durables, and nothing on anyone else's."""
    calls: list[str] = []
    for durable in durables:
        on = f"{subjects.STREAM}.{durable}"
        calls += [
            f"$JS.API.CONSUMER.INFO.{on}",
            f"$JS.API.CONSUMER.DELETE.{on}",
            f"$JS.API.CONSUMER.CREATE.{on}",
            f"$JS.API.CONSUMER.CREATE.{on}.>",
            f"$JS.API.CONSUMER.DURABLE.CREATE.{on}",
            f"$JS.API.CONSUMER.MSG.NEXT.{on}",
            f"$JS.ACK.{on}.>",
        ]
    return tuple(calls)


def _service(
    name: str,
    *,
    publishes: tuple[str, ...],
    durables: tuple[str, ...] = (),
    serves: tuple[str, ...] = (),
    listens: tuple[str, ...] = (),
) -> NatsUser:
    return NatsUser(
        name=name,
        publish=(*publishes, subjects.dead_letter(name), *_stream_api(), *_consumer_api(durables)),
        subscribe=(INBOX, *serves, *listens),
        allow_responses=bool(serves),
    )


def agent_user(name: str, agent_ids: Iterable[str]) -> NatsUser:
    """The user of a process running ``agent_ids``: it publishes for those agents only
    (their decisions, heartbeats and model calls) and drives only their consumers."""
    ids = tuple(agent_ids)
    own = [
        subject
        for agent_id in ids
        for subject in (
            subjects.decision_proposed(agent_id),
            subjects.agent_heartbeat(agent_id),
            subjects.llm_call(agent_id),
        )
    ]
    return _service(
        name,
        publishes=(*own, LEDGER_QUERIES, MARKET_QUERIES),
        durables=tuple(agent_user_name(agent_id) for agent_id in ids),
    )


def nats_users(
    lineup: Lineup,
    *,
    market_durables: tuple[str, ...],
    ledger_durables: tuple[str, ...],
    risk_durables: tuple[str, ...],
    hosts: Mapping[str, tuple[str, ...]] | None = None,
) -> tuple[NatsUser, ...]:
    """Every user of the arena's NATS server, agents in line-up order, then ``hosts``
    (a process hosting several agents, by name: the agents it hosts)."""
    hosts = hosts or {}
    users = [
        _service(
            "market",
            publishes=(
                subjects.CYCLE_STARTED,
                subjects.MARKET_SNAPSHOT,
                subjects.MARKET_TICK,
                LEDGER_QUERIES,
                *_market_state_api(),
            ),
            durables=market_durables,
            serves=(MARKET_QUERIES, SCHEDULER),
        ),
        _service(
            "risk",
            publishes=(subjects.DECISION_VERDICT_ALL, LEDGER_QUERIES, MARKET_QUERIES),
            durables=risk_durables,
            listens=(subjects.MARKET_SNAPSHOT,),
        ),
        _service(
            "ledger",
            publishes=(
                subjects.CYCLE_COMPLETED,
                subjects.LEDGER_POSITION_ALL,
                subjects.LEDGER_ACCOUNT_ALL,
                MARKET_QUERIES,
            ),
            durables=ledger_durables,
            serves=(LEDGER_QUERIES,),
        ),
        _service(
            "gateway",
            publishes=(LEDGER_QUERIES, MARKET_QUERIES, SCHEDULER),
            listens=(*subjects.STREAM_SUBJECTS, subjects.DLQ_ALL),
        ),
    ]
    users += [agent_user(agent_user_name(agent.id), (agent.id,)) for agent in lineup.agents]
    users += [agent_user(name, agent_ids) for name, agent_ids in hosts.items()]
    users.append(NatsUser(TOOLING_USER, publish=(), subscribe=(">",), deny_publish=(">",)))
    users.append(NatsUser(ADMIN_USER, publish=(">",), subscribe=(">",)))
    return tuple(users)


def _quoted(items: Iterable[str]) -> str:
    return "[" + ", ".join(f'"{item}"' for item in items) + "]"


def render_auth_conf(users: Iterable[NatsUser]) -> str:
    """The ``authorization`` block of nats-server's config; passwords come from variables."""
    lines = ["authorization {", "  users = ["]
    for user in users:
        lines.append("    {")
        lines.append(f'      user: "{user.name}"')
        lines.append(f"      password: ${user.password_variable}")
        lines.append("      permissions: {")
        if user.publish:
            lines.append(f"        publish: {{ allow: {_quoted(user.publish)} }}")
        if user.deny_publish:
            lines.append(f"        publish: {{ deny: {_quoted(user.deny_publish)} }}")
        lines.append(f"        subscribe: {{ allow: {_quoted(user.subscribe)} }}")
        if user.allow_responses:
            lines.append("        allow_responses: true")
        lines.append("      }")
        lines.append("    }")
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"
