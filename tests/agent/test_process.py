"""``AGENT_ID=<id> python -m services.agent`` as a real process: stops cleanly on SIGTERM."""

from __future__ import annotations

from pathlib import Path

import nats

from services.agent.service import consumer_name
from services.common import subjects
from tests.e2e.processes import ServiceProcess
from tests.support import eventually


async def test_stops_cleanly_on_sigterm_while_consuming(nats_url: str, tmp_path: Path) -> None:
    # A drain used to hang once a fetch had expired: let a few expire before stopping.
    nc = await nats.connect(nats_url)
    durable = consumer_name("random")
    pulls = await nc.subscribe(f"$JS.API.CONSUMER.MSG.NEXT.{subjects.STREAM}.{durable}")
    env = {"NATS_URL": nats_url, "METRICS_PORT": "0", "AGENT_ID": "random"}
    agent = ServiceProcess("agent-random", "agent", env, tmp_path)
    try:
        await agent.start().wait_started()
        await eventually(lambda: pulls.delivered >= 3, what="three pull requests")
        assert agent.stop(timeout=10) == 0
    finally:
        if agent.proc.poll() is None:
            agent.kill()
        await nc.close()
