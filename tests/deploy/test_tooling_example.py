"""docs/deploy.md's subscriber example, run as written against NATS locked down as ``make run``.

The server is devstack's embedded NATS with the deployment's users and generated passwords,
the streams are created as ``admin`` by the same command ``make run`` runs, an agent
publishes as its own user, and the example connects with the very ``NATS_URL`` line that
``make run`` prints, evaluated by a shell.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import nats
import pytest
from prometheus_client import CollectorRegistry

from deploy import render
from deploy.nats_users import ADMIN_USER, TOOLING_USER
from devstack.credentials import NatsCredentials, connect_hints
from devstack.nats_server import EmbeddedNats
from services.common import subjects
from services.common.bus import Bus, BusMetrics
from services.common.contracts import Action, Decision
from services.common.lineup import load_lineup
from services.common.settings import PROJECT_ROOT
from tests.deploy.files import ROOT
from tests.support import eventually

DOC = ROOT / "docs" / "deploy.md"
LINEUP = Path(__file__).with_name("lineup.toml")
AGENT = "random"
# Where the printed lines in docs/deploy.md say the data directory and the server are.
DOC_PASSWORDS = "/home/you/llm-trading-arena/.arena/nats/passwords.env"
DOC_PORT = 4222


def section(title: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def python_example() -> str:
    blocks = re.findall(
        r"```python\n(.*?)```", section("Build your own tool on the NATS subjects"), re.S
    )
    assert blocks, "docs/deploy.md has no Python subscriber example"
    return str(blocks[0])


@dataclass
class ArenaNats:
    server: EmbeddedNats
    credentials: NatsCredentials

    def url(self, user: str) -> str:
        return self.credentials.url(user, "127.0.0.1", self.server.port)


@pytest.fixture
def arena_nats(tmp_path: Path) -> Iterator[ArenaNats]:
    """NATS as ``python -m devstack run`` starts it, and the streams its admin step makes."""
    data = tmp_path / "arena"
    credentials = NatsCredentials(
        data / "nats" / "passwords.env", render.users_for(load_lineup(LINEUP))
    )
    config = credentials.write_server_config(data / "nats" / "auth.conf")
    server = EmbeddedNats(data / "nats", config=config, env=credentials.server_environment())
    server.start()
    try:
        arena = ArenaNats(server, credentials)
        streams = subprocess.run(
            [sys.executable, "-m", "services.ledger", "streams"],
            env={**os.environ, "NATS_URL": arena.url(ADMIN_USER)},
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert streams.returncode == 0, streams.stderr
        assert f"{subjects.STREAM}: created" in streams.stdout
        yield arena
    finally:
        server.stop()


@pytest.fixture
async def agent_bus(arena_nats: ArenaNats) -> AsyncIterator[Bus]:
    user = f"agent-{AGENT}"
    bus = await Bus.connect(arena_nats.url(user), user, BusMetrics(CollectorRegistry()))
    yield bus
    await bus.close()


def decision(cycle_id: str) -> Decision:
    now = datetime.now(UTC)
    return Decision(
        decision_id=Decision.make_id(cycle_id, AGENT),
        cycle_id=cycle_id,
        agent_id=AGENT,
        decided_at=now,
        decision_deadline=now + timedelta(minutes=4),
        actions=(Action(action="BUY", symbol="BTCUSDT", margin_usd=Decimal(20), leverage=3),),
        reasoning="a test decision",
    )


def shows_one_of(line: str, cycle_ids: list[str]) -> bool:
    """The example prints ``<agent> <cycle_id> <actions>``."""
    parts = line.split(" ", 2)
    return len(parts) == 3 and parts[1] in cycle_ids


def test_the_docs_quote_the_lines_make_run_prints(arena_nats: ArenaNats) -> None:
    printed = connect_hints(arena_nats.credentials, "127.0.0.1", arena_nats.server.port)
    quoted = section("Who may do what on NATS")
    for line in printed:
        as_in_docs = line.replace(str(arena_nats.credentials.path), DOC_PASSWORDS).replace(
            f"@127.0.0.1:{arena_nats.server.port}", f"@127.0.0.1:{DOC_PORT}"
        )
        assert f"[arena] {as_in_docs}\n" in quoted, as_in_docs


async def test_the_python_example_prints_an_agents_decision_as_tooling(
    arena_nats: ArenaNats, agent_bus: Bus, tmp_path: Path
) -> None:
    script = tmp_path / "decisions.py"
    script.write_text(python_example(), encoding="utf-8")
    (tooling_line, _) = connect_hints(arena_nats.credentials, "127.0.0.1", arena_nats.server.port)
    url_as_printed = tooling_line.split("NATS_URL=", 1)[1]
    assert url_as_printed.startswith(f"nats://{TOOLING_USER}:$(grep ")
    # Pasted into a shell with `export ` in front, as docs/deploy.md says.
    shell = f"export NATS_URL={url_as_printed}; exec {shlex.quote(sys.executable)} {script}"
    said = tmp_path / "example.stderr"
    with said.open("wb") as stderr:
        example = await asyncio.create_subprocess_exec(
            "sh", "-c", shell, stdout=asyncio.subprocess.PIPE, stderr=stderr
        )
    lines: list[str] = []

    async def read() -> None:
        assert example.stdout is not None
        async for raw in example.stdout:
            lines.append(raw.decode().rstrip("\n"))

    reader = asyncio.create_task(read())
    published: list[str] = []

    async def printed() -> list[str]:
        # A core subscriber sees only what is published after it subscribed: publish until
        # the example shows one (each for a new cycle, as the agent would).
        cycle_id = f"cycle-{len(published)}"
        await agent_bus.publish(
            subjects.decision_proposed(AGENT), decision(cycle_id), Decision.make_id(cycle_id, AGENT)
        )
        published.append(cycle_id)
        return [line for line in lines if shows_one_of(line, published)]

    try:
        shown = await eventually(printed, timeout=30, interval=0.2, what="the example's output")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the example said: {said.read_text()[-2000:]}") from None
    finally:
        if example.returncode is None:
            example.terminate()
        await example.wait()
        await reader
    agent, cycle_id, actions = shown[0].split(" ", 2)
    assert agent == AGENT
    assert cycle_id in published
    assert "'action': 'BUY'" in actions and "'symbol': 'BTCUSDT'" in actions


async def test_tooling_can_publish_nothing(arena_nats: ArenaNats) -> None:
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc).lower())

    tooling = await nats.connect(
        arena_nats.url(TOOLING_USER), error_cb=on_error, allow_reconnect=False
    )
    admin = await nats.connect(arena_nats.url(ADMIN_USER), allow_reconnect=False)
    try:
        stream = admin.jetstream()
        before = (await stream.stream_info(subjects.STREAM)).state.messages
        forged = subjects.decision_proposed(AGENT)
        await tooling.publish(forged, decision("forged").to_bytes())
        await tooling.flush()

        def refused(subject: str) -> bool:
            return any("permissions violation" in e and subject.lower() in e for e in errors)

        await eventually(lambda: refused(forged), what="tooling's publish refused")
        # The server refused it before storing: the stream holds nothing more.
        assert (await stream.stream_info(subjects.STREAM)).state.messages == before
        # Nor may it ask anything (a request is a publish) or touch the JetStream API.
        with pytest.raises(nats.errors.TimeoutError):
            await tooling.request(f"$JS.API.STREAM.INFO.{subjects.STREAM}", b"", timeout=1)
        await eventually(
            lambda: refused(f"$JS.API.STREAM.INFO.{subjects.STREAM}"), what="JetStream refused"
        )
    finally:
        await tooling.close()
        await admin.close()


@pytest.mark.parametrize("user", [TOOLING_USER, ADMIN_USER])
def test_a_printed_url_gives_the_users_password_in_a_shell(tmp_path: Path, user: str) -> None:
    # A data directory a shell would split, and one with a character it would interpret.
    path = tmp_path / "my arena's data" / "nats" / "passwords.env"
    credentials = NatsCredentials(path, render.users_for(load_lineup(LINEUP)))
    hints = connect_hints(credentials, "127.0.0.1", 4333)
    (line,) = [h for h in hints if f"NATS_URL=nats://{user}:" in h]
    shell = f'export {line.split(": ", 1)[1]}; printf %s "$NATS_URL"'
    result = subprocess.run(["sh", "-c", shell], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout == credentials.url(user, "127.0.0.1", 4333)
    assert credentials.password(user) not in line
