"""The hub's fan-out rules, without a network: bounded queues and dropping slow clients."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry

from services.common.clock import ManualClock
from services.gateway.hub import CLOSE_GOING_AWAY, CLOSE_TOO_SLOW, Hub
from services.gateway.metrics import GatewayMetrics
from services.gateway.protocol import ConnectionData, EventType

NOW = datetime(2025, 3, 1, tzinfo=UTC)


def _hub(queue_size: int) -> tuple[Hub, CollectorRegistry]:
    registry = CollectorRegistry()
    return Hub(ManualClock(NOW), GatewayMetrics(registry), queue_size=queue_size), registry


def _ping(n: int) -> ConnectionData:
    return ConnectionData(client_id=f"m{n}", server_time=NOW)


async def test_a_full_queue_drops_that_client_and_no_other() -> None:
    hub, registry = _hub(queue_size=2)
    fast, slow = hub.connect(), hub.connect()
    received: list[str] = []
    for n in range(3):
        hub.broadcast(EventType.CYCLE_START, _ping(n))
        while not fast.queue.empty():
            received.append(json.loads(fast.queue.get_nowait())["data"]["client_id"])
    assert received == ["m0", "m1", "m2"]
    assert slow.ended.is_set()
    assert slow.close_code == CLOSE_TOO_SLOW
    assert not fast.ended.is_set()
    assert hub.client_count == 1
    assert registry.get_sample_value("arena_gateway_ws_clients_dropped_total") == 1
    assert registry.get_sample_value("arena_gateway_ws_clients") == 1


async def test_envelope_has_type_data_and_clock_time() -> None:
    hub, _ = _hub(queue_size=1)
    message = json.loads(hub.envelope(EventType.CONNECTION, _ping(1)))
    assert message == {
        "type": "connection",
        "data": {"client_id": "m1", "server_time": "2025-03-01T00:00:00Z"},
        "timestamp": "2025-03-01T00:00:00Z",
    }


async def test_close_all_ends_sessions_without_counting_drops() -> None:
    hub, registry = _hub(queue_size=4)
    client = hub.connect()
    hub.close_all()
    assert client.ended.is_set()
    assert client.close_code == CLOSE_GOING_AWAY
    assert hub.client_count == 0
    assert registry.get_sample_value("arena_gateway_ws_clients_dropped_total") == 0


def test_queue_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="queue_size"):
        _hub(queue_size=0)
