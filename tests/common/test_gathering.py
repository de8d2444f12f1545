"""A lingering pull against a real nats-server: a status an earlier request left behind
does not end the next one, and a pull the server refuses raises instead of coming back
empty at once (a consumer loop would otherwise ask again without pause)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest

from services.common import subjects
from services.common.bus import Bus
from services.common.contracts import CycleStarted
from services.common.durables import (
    ConsumerSpec,
    PullRefused,
    gathered_messages,
    subscribe,
)
from tests.support import eventually

SPEC = ConsumerSpec("gathering", subjects.CYCLE_STARTED, batch=8, linger_seconds=1.0)


def _cycle(n: int) -> CycleStarted:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    return CycleStarted(
        cycle_id=f"c{n}", sequence=n, started_at=now, decision_deadline=now, symbols=("BTCUSDT",)
    )


async def test_a_status_left_by_an_earlier_request_does_not_end_the_next(bus: Bus) -> None:
    sub = await subscribe(bus.jetstream, SPEC)
    # An earlier request whose end (a 408 when it expires empty) came after its asker left.
    stale = json.dumps({"batch": 1, "expires": 50_000_000}).encode()
    await sub._nc.publish(sub._nms, stale, sub._deliver)
    await eventually(lambda: not sub._sub._pending_queue.empty(), what="the stale status")
    await bus.publish(subjects.CYCLE_STARTED, _cycle(1), "c1")
    got = await gathered_messages(sub, SPEC.batch, 1.0)
    assert [CycleStarted.model_validate_json(m.data).cycle_id for m in got] == ["c1"]


async def test_a_pull_the_server_refuses_raises_at_once(bus: Bus) -> None:
    sub = await subscribe(bus.jetstream, SPEC)
    await bus.jetstream.delete_consumer(subjects.STREAM, SPEC.durable)
    began = time.monotonic()
    with pytest.raises(PullRefused, match=r"ended with (409|503)"):
        await gathered_messages(sub, SPEC.batch, 5.0)
    # Refused, not lingered: well before the request's five seconds.
    assert time.monotonic() - began < 4.0
