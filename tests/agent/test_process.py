"""``AGENT_ID=<id> python -m services.agent`` as a real process: stops cleanly on SIGTERM."""

from __future__ import annotations

from pathlib import Path

from services.agent.service import consumer_name
from tests.e2e.processes import ServiceProcess, assert_stops_cleanly_while_consuming


async def test_stops_cleanly_on_sigterm_while_consuming(nats_url: str, tmp_path: Path) -> None:
    env = {"NATS_URL": nats_url, "METRICS_PORT": "0", "AGENT_ID": "random"}
    agent = ServiceProcess("agent-random", "agent", env, tmp_path)
    await assert_stops_cleanly_while_consuming(agent, consumer_name("random"))
