"""``python -m services.risk`` as a real process: starts, consumes, stops cleanly on SIGTERM."""

from __future__ import annotations

from pathlib import Path

import nats

from services.common import subjects
from tests.e2e.processes import ServiceProcess
from tests.support import eventually


async def test_stops_cleanly_on_sigterm_while_consuming(nats_url: str, tmp_path: Path) -> None:
    # Watch the consumer's pull requests: a drain used to hang once a fetch had expired
    # (its late status reply stayed queued with no reader), so let a few expire first.
    nc = await nats.connect(nats_url)
    pulls = await nc.subscribe(f"$JS.API.CONSUMER.MSG.NEXT.{subjects.STREAM}.risk")
    risk = ServiceProcess("risk", "risk", {"NATS_URL": nats_url, "METRICS_PORT": "0"}, tmp_path)
    try:
        await risk.start().wait_started()
        await eventually(lambda: pulls.delivered >= 3, what="three pull requests")
        assert risk.stop(timeout=10) == 0
    finally:
        if risk.proc.poll() is None:
            risk.kill()
        await nc.close()
