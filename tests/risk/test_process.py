"""``python -m services.risk`` as a real process: starts, consumes, stops cleanly on SIGTERM."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.processes import ServiceProcess, assert_stops_cleanly_while_consuming


async def test_stops_cleanly_on_sigterm_while_consuming(nats_url: str, tmp_path: Path) -> None:
    risk = ServiceProcess("risk", "risk", {"NATS_URL": nats_url, "METRICS_PORT": "0"}, tmp_path)
    await assert_stops_cleanly_while_consuming(risk, "risk")
