"""deploy/nats on a real nats-server: each user can do its job and nothing more."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from services.agent.host import process_name
from services.common import channels, subjects
from tests.deploy.nats_server import AuthNats, auth_nats
from tests.support import eventually

LINEUP = Path(__file__).with_name("lineup.toml")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[AuthNats]:
    with auth_nats(tmp_path, LINEUP) as running:
        yield running


class Conn:
    """A client that records the server's permission errors."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.nc: Client | None = None

    async def connect(self, url: str) -> Client:
        async def on_error(exc: Exception) -> None:
            self.errors.append(str(exc))

        self.nc = await nats.connect(url, error_cb=on_error, allow_reconnect=False)
        return self.nc

    def refused(self, subject: str) -> bool:
        # nats-py reports the server's error in lower case.
        wanted = subject.lower()
        return any(
            "permissions violation" in e.lower() and wanted in e.lower() for e in self.errors
        )


@pytest.fixture
async def conns() -> AsyncIterator[list[Conn]]:
    made: list[Conn] = []
    yield made
    for conn in made:
        if conn.nc is not None and not conn.nc.is_closed:
            await conn.nc.close()


async def connect(conns: list[Conn], server: AuthNats, user: str) -> tuple[Conn, Client]:
    conn = Conn()
    conns.append(conn)
    return conn, await conn.connect(server.url(user))


async def watch(
    conns: list[Conn], server: AuthNats, pattern: str = "arena.>"
) -> tuple[Conn, Client, list[str]]:
    """Tooling connected and subscribed to ``pattern``: the subjects it sees, in order."""
    conn, nc = await connect(conns, server, "tooling")
    seen: list[str] = []

    async def record(msg: Msg) -> None:
        seen.append(msg.subject)

    await nc.subscribe(pattern, cb=record)
    await nc.flush()
    return conn, nc, seen


async def test_a_wrong_password_is_refused(server: AuthNats) -> None:
    with pytest.raises(Exception, match=r"[Aa]uthorization"):
        await nats.connect(
            f"nats://agent-random:wrong@127.0.0.1:{server.port}", allow_reconnect=False
        )


async def test_an_agent_publishes_only_its_own_decisions(
    server: AuthNats, conns: list[Conn]
) -> None:
    tool, _, seen = await watch(conns, server)

    agent, nc = await connect(conns, server, "agent-random")
    own = subjects.decision_proposed("random")
    other = subjects.decision_proposed("momentum")
    verdict = subjects.decision_verdict("random")
    for subject in (other, verdict, own):
        await nc.publish(subject, b"{}")
    await nc.flush()

    await eventually(lambda: own in seen, what="the agent's own decision reaching tooling")
    await eventually(lambda: agent.refused(other) and agent.refused(verdict), what="refusals")
    assert other not in seen and verdict not in seen
    assert not tool.errors


async def test_only_risk_publishes_verdicts_and_only_the_ledger_ledger_events(
    server: AuthNats, conns: list[Conn]
) -> None:
    verdict = subjects.decision_verdict("random")
    account = subjects.ledger_account("random")
    risk, risk_nc = await connect(conns, server, "risk")
    market, market_nc = await connect(conns, server, "market")
    ledger, ledger_nc = await connect(conns, server, "ledger")
    await risk_nc.publish(verdict, b"{}")
    await risk_nc.publish(account, b"{}")
    await market_nc.publish(verdict, b"{}")
    await ledger_nc.publish(account, b"{}")
    for nc in (risk_nc, market_nc, ledger_nc):
        await nc.flush()
    await eventually(lambda: risk.refused(account) and market.refused(verdict), what="refusals")
    assert not risk.refused(verdict)
    assert not ledger.errors


async def test_tooling_reads_everything_and_publishes_nothing(
    server: AuthNats, conns: list[Conn]
) -> None:
    tool, tool_nc, seen = await watch(conns, server, ">")
    _, ledger_nc = await connect(conns, server, "ledger")
    await ledger_nc.publish(subjects.CYCLE_COMPLETED, b"{}")
    await ledger_nc.flush()
    await eventually(lambda: subjects.CYCLE_COMPLETED in seen, what="tooling sees the event")

    for subject in (subjects.decision_proposed("random"), channels.LEDGER_QUERY_ACCOUNTS.subject):
        await tool_nc.publish(subject, b"{}")
    await tool_nc.flush()
    await eventually(
        lambda: tool.refused(channels.LEDGER_QUERY_ACCOUNTS.subject),
        what="tooling's publish refused",
    )
    # A permitted message published after the refused one reaches tooling after it would
    # have: once the sentinel is seen, the refused message had its chance to arrive.
    sentinel = subjects.CYCLE_COMPLETED
    await ledger_nc.publish(sentinel, b'{"sentinel": true}')
    await ledger_nc.flush()
    await eventually(lambda: seen.count(sentinel) == 2, what="the sentinel after the refusal")
    assert subjects.decision_proposed("random") not in seen


async def test_without_credentials_nothing_connects(server: AuthNats) -> None:
    with pytest.raises(Exception, match=r"[Aa]uthorization"):
        await nats.connect(f"nats://127.0.0.1:{server.port}", allow_reconnect=False)


async def test_only_the_admin_may_change_streams(server: AuthNats, conns: list[Conn]) -> None:
    changes = [
        f"$JS.API.STREAM.{verb}.{stream}"
        for verb in ("CREATE", "UPDATE", "DELETE", "PURGE")
        for stream in (subjects.STREAM, subjects.DLQ_STREAM)
    ]
    for user in ("market", "risk", "ledger", "gateway", "agent-random", "tooling"):
        conn, nc = await connect(conns, server, user)
        for subject in changes:
            await nc.publish(subject, b"{}")
        await nc.flush()
        await eventually(
            lambda conn=conn: all(conn.refused(s) for s in changes),  # type: ignore[misc]
            what=f"{user}'s stream changes refused",
        )
    admin, admin_nc = await connect(conns, server, "admin")
    for subject in changes:
        await admin_nc.publish(subject, b"{}")
    await admin_nc.flush()
    # A round trip after the publishes: a refusal would have been reported before its reply.
    await admin_nc.request("$JS.API.INFO", b"", timeout=5)
    assert not admin.errors


async def test_an_agent_host_acts_for_its_agents_only(tmp_path: Path, conns: list[Conn]) -> None:
    hosted = ("momentum", "random")
    host = process_name(hosted)
    with auth_nats(tmp_path, LINEUP, {host: hosted}) as server:
        tool, _, seen = await watch(conns, server)

        conn, nc = await connect(conns, server, host)
        own = [subjects.decision_proposed(a) for a in hosted]
        own += [subjects.agent_heartbeat(a) for a in hosted]
        foreign = [
            subjects.decision_proposed("stranger"),
            subjects.agent_heartbeat("stranger"),
            subjects.decision_verdict("momentum"),
            f"$JS.API.CONSUMER.DURABLE.CREATE.{subjects.STREAM}.risk",
            f"$JS.API.CONSUMER.DURABLE.CREATE.{subjects.STREAM}.agent-stranger",
        ]
        for subject in (*foreign, *own):
            await nc.publish(subject, b"{}")
        await nc.flush()

        await eventually(lambda: set(own) <= set(seen), what="the hosted agents' events")
        await eventually(lambda: all(conn.refused(s) for s in foreign), what="refusals")
        assert not set(foreign) & set(seen)
        # Its own agents' consumers it may create (the server answers, no refusal).
        for agent in hosted:
            create = f"$JS.API.CONSUMER.DURABLE.CREATE.{subjects.STREAM}.agent-{agent}"
            await nc.request(create, b"{}", timeout=5)
            assert not conn.refused(create)
        assert not tool.errors
