"""The hub's fan-out rules, without a network: bounded mailboxes (messages and bytes),
a bounded number of clients, and dropping slow clients."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry

from services.common.clock import ManualClock
from services.gateway.hub import CLOSE_GOING_AWAY, CLOSE_TOO_SLOW, Client, Drop, Hub, HubLimits
from services.gateway.metrics import GatewayMetrics
from services.gateway.protocol import ConnectionData, EventType

NOW = datetime(2025, 3, 1, tzinfo=UTC)


def _hub(**limits: int) -> tuple[Hub, CollectorRegistry]:
    registry = CollectorRegistry()
    return Hub(ManualClock(NOW), GatewayMetrics(registry), HubLimits(**limits)), registry


def _ping(n: int, padding: int = 0) -> ConnectionData:
    return ConnectionData(client_id=f"m{n}" + "x" * padding, server_time=NOW)


def _size(hub: Hub, message: ConnectionData) -> int:
    return len(hub.envelope(EventType.CYCLE_START, message).encode())


async def _drain(client: Client) -> list[str]:
    received = []
    while client.queued:
        received.append(json.loads(await client.next())["data"]["client_id"][:2])
    return received


def _dropped(registry: CollectorRegistry, reason: str) -> float | None:
    return registry.get_sample_value("arena_gateway_ws_clients_dropped_total", {"reason": reason})


def _refused(registry: CollectorRegistry, reason: str) -> float | None:
    return registry.get_sample_value("arena_gateway_ws_clients_refused_total", {"reason": reason})


async def test_a_full_queue_drops_that_client_and_no_other() -> None:
    hub, registry = _hub(queue_size=2)
    fast, slow = hub.connect(), hub.connect()
    assert fast is not None and slow is not None
    received: list[str] = []
    for n in range(3):
        hub.broadcast(EventType.CYCLE_START, _ping(n))
        received.extend(await _drain(fast))
    assert received == ["m0", "m1", "m2"]
    assert slow.ended.is_set()
    assert slow.close_code == CLOSE_TOO_SLOW
    assert slow.close_reason == "too slow: more than 2 messages queued"
    assert not fast.ended.is_set()
    assert hub.client_count == 1
    assert _dropped(registry, "queue") == 1
    assert _dropped(registry, "bytes") == 0
    assert registry.get_sample_value("arena_gateway_ws_clients") == 1


async def test_queued_bytes_are_bounded_as_well_as_messages() -> None:
    hub, _ = _hub(queue_size=100)
    one = _size(hub, _ping(0, padding=1000))
    hub, registry = _hub(queue_size=100, buffer_bytes=3 * one)
    fast, slow = hub.connect(), hub.connect()
    assert fast is not None and slow is not None
    for n in range(3):
        hub.broadcast(EventType.CYCLE_START, _ping(n, padding=1000))
    assert (slow.queued, slow.queued_bytes) == (3, 3 * one)
    await _drain(fast)
    assert fast.queued_bytes == 0

    hub.broadcast(EventType.CYCLE_START, _ping(3, padding=1000))
    assert slow.ended.is_set()
    assert slow.close_code == CLOSE_TOO_SLOW
    assert slow.close_reason == f"too slow: more than {3 * one} bytes queued"
    assert await _drain(fast) == ["m3"]
    assert not fast.ended.is_set()
    assert (_dropped(registry, "bytes"), _dropped(registry, "queue")) == (1, 0)
    assert hub.clients_dropped == 1


async def test_bytes_are_counted_as_sent_not_as_characters() -> None:
    hub, _ = _hub()
    client = hub.connect()
    assert client is not None
    hub.broadcast(EventType.CYCLE_START, _ping(0, padding=100))
    ascii_size = client.queued_bytes
    await client.next()
    hub.broadcast(
        EventType.CYCLE_START, ConnectionData(client_id="m0" + "€" * 100, server_time=NOW)
    )
    assert client.queued_bytes == ascii_size + 2 * 100  # "€" is three bytes in UTF-8


async def test_one_message_larger_than_the_buffer_still_reaches_an_empty_queue() -> None:
    hub, registry = _hub(buffer_bytes=10)
    client = hub.connect()
    assert client is not None
    hub.broadcast(EventType.CYCLE_START, _ping(0, padding=500))
    assert not client.ended.is_set()
    assert await _drain(client) == ["m0"]
    hub.broadcast(EventType.CYCLE_START, _ping(1, padding=500))
    hub.broadcast(EventType.CYCLE_START, _ping(2, padding=500))
    assert client.ended.is_set()
    assert _dropped(registry, "bytes") == 1


async def test_clients_over_the_limit_are_refused_and_counted() -> None:
    hub, registry = _hub(max_clients=2)
    first, second = hub.connect(), hub.connect()
    assert first is not None and second is not None
    assert hub.connect() is None
    assert hub.connect() is None
    assert (hub.client_count, hub.clients_refused) == (2, 2)
    assert _refused(registry, "limit") == 2
    assert _refused(registry, "origin") == 0
    assert hub.full_reason == "server full: at most 2 WebSocket clients; try again later"
    assert len(hub.full_reason.encode()) <= 123  # what a close frame can carry

    hub.disconnect(first)  # a place is free again
    assert hub.connect() is not None
    assert hub.client_count == 2


async def test_refused_origins_are_counted_apart() -> None:
    hub, registry = _hub()
    hub.refuse_origin()
    assert hub.origins_refused == 1
    assert _refused(registry, "origin") == 1
    assert _refused(registry, "limit") == 0


async def test_a_send_timeout_drop_is_counted_once_and_never_after_shutdown() -> None:
    hub, registry = _hub()
    slow, closing = hub.connect(), hub.connect()
    assert slow is not None and closing is not None
    timeout = Drop("send_timeout", "too slow: a message was not taken within 5 s")
    hub.drop(slow, timeout)
    hub.drop(slow, timeout)
    assert slow.close_reason == timeout.reason
    assert _dropped(registry, "send_timeout") == 1

    hub.close_all()
    hub.drop(closing, timeout)  # its send gave up because the server is stopping
    assert closing.close_code == CLOSE_GOING_AWAY
    assert _dropped(registry, "send_timeout") == 1
    assert hub.clients_dropped == 1


async def test_envelope_has_type_data_and_clock_time() -> None:
    hub, _ = _hub()
    message = json.loads(hub.envelope(EventType.CONNECTION, _ping(1)))
    assert message == {
        "type": "connection",
        "data": {"client_id": "m1", "server_time": "2025-03-01T00:00:00Z"},
        "timestamp": "2025-03-01T00:00:00Z",
    }


async def test_close_all_ends_sessions_without_counting_drops() -> None:
    hub, registry = _hub(queue_size=4)
    client = hub.connect()
    assert client is not None
    hub.close_all()
    assert client.ended.is_set()
    assert client.close_code == CLOSE_GOING_AWAY
    assert hub.client_count == 0
    assert hub.clients_dropped == 0
    assert sum(_dropped(registry, r) or 0 for r in ("queue", "bytes", "send_timeout")) == 0


@pytest.mark.parametrize(
    ("limits", "name"),
    [
        ({"queue_size": 0}, "queue_size"),
        ({"buffer_bytes": 0}, "buffer_bytes"),
        ({"max_clients": 0}, "max_clients"),
        ({"send_timeout": 0}, "send_timeout"),
    ],
)
def test_limits_must_be_positive(limits: dict[str, float], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        HubLimits(**limits)  # type: ignore[arg-type]
