"""The gateway's subscriptions with nobody listening: events make cached reads stale and
are not decoded; once a client connects they are decoded (a malformed one dead-lettered)
and relayed."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from services.common import subjects
from services.common.bus import Bus, BusMetrics
from services.common.clock import ManualClock
from services.gateway.cache import ReadCache
from services.gateway.hub import Hub
from services.gateway.metrics import GatewayMetrics
from services.gateway.relay import LEADERBOARD_KEY, PRICES_KEY, subscribe_relays
from tests.builders import NOW, cycle_started
from tests.support import eventually, publish_raw

MALFORMED = b'{"cycle_id": 17}'


async def test_with_nobody_listening_events_only_make_the_cache_stale(nats_url: str) -> None:
    metrics = BusMetrics(CollectorRegistry())
    gateway = await Bus.connect(nats_url, "relay-test", metrics)
    publisher = await Bus.connect(nats_url, "publisher", BusMetrics(CollectorRegistry()))
    hub = Hub(ManualClock(NOW), GatewayMetrics(CollectorRegistry()))
    cache = ReadCache(ttl=3600)
    loads: list[str] = []

    async def cached(key: str) -> None:
        async def load() -> bytes:
            loads.append(key)
            return key.encode()

        await cache.get(key, load)

    def dead_letters() -> float:
        sample = metrics.dead_lettered.labels(subjects.CYCLE_COMPLETED, "malformed")
        return float(sample._value.get())

    try:
        await gateway.ensure_streams()
        await subscribe_relays(gateway, hub, cache)
        for key in (LEADERBOARD_KEY, PRICES_KEY):
            await cached(key)
        # A tick makes the prices stale; a malformed completion makes the ledger's reads
        # stale without being read (nobody to show it to, so nothing dead-lettered here).
        await publish_raw(publisher, subjects.MARKET_TICK, b"not even JSON")
        await publish_raw(publisher, subjects.CYCLE_COMPLETED, MALFORMED)

        async def both_stale() -> bool:
            for key in (LEADERBOARD_KEY, PRICES_KEY):
                await cached(key)
            return loads.count(LEADERBOARD_KEY) == 2 and loads.count(PRICES_KEY) == 2

        await eventually(both_stale, what="the leaderboard and prices loaded afresh")

        # A client connected: events are decoded and relayed, a malformed one dead-lettered
        # (only this one: a subscription's messages are handled in order, so the one
        # before it was handled already, without being read).
        client = hub.connect()
        assert client is not None
        await publish_raw(publisher, subjects.CYCLE_COMPLETED, MALFORMED)
        await eventually(lambda: dead_letters() >= 1, what="the malformed completion dead-lettered")
        assert dead_letters() == 1
        await publisher.publish(
            subjects.CYCLE_STARTED, cycle_started("c-1", 1, NOW, ("momentum",)), "c-1"
        )
        relayed = await client.next()
        assert '"cycle_start"' in relayed and '"c-1"' in relayed
    finally:
        await publisher.close()
        await gateway.close()
