"""A replay's bars published together: in order, and a source error in the middle of a
cycle period's bars records only the bars published (a restart takes the failed one again)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from prometheus_client import CollectorRegistry

from services.common import subjects
from services.common.bus import Bus, BusMetrics
from services.common.clock import ManualClock
from services.common.contracts import MarketTick, TickPrice
from services.market.metrics import MarketMetrics
from services.market.source import JsonObject, MarketData
from services.market.ticks import TickPublisher
from tests.builders import bar
from tests.support import collect, eventually

T0 = datetime(2025, 1, 1, tzinfo=UTC)


class BrokenAtBar:
    """A replay-like source that moves its cursor before reading a bar (as the replay
    does) and cannot read bar ``broken``."""

    name = "replay"
    step = timedelta(minutes=1)

    def __init__(self, broken: int) -> None:
        self.cursor = 0
        self.broken = broken

    async def snapshot_data(self, now: datetime) -> MarketData:
        raise NotImplementedError("ticks only")

    async def tick(self, now: datetime) -> tuple[TickPrice, ...]:
        self.cursor += 1
        if self.cursor == self.broken:
            raise ValueError(f"bar {self.cursor} is unreadable")
        return (bar("BTCUSDT", 100 + self.cursor, low=99, high=200),)

    async def aclose(self) -> None:
        return None

    def now(self) -> datetime:
        return T0 + self.cursor * self.step

    def remaining(self) -> int:
        return 100

    def position(self) -> JsonObject:
        return {"cursor": self.cursor}

    def checkpoint(self) -> None:
        return None

    async def resume(self, position: JsonObject, checkpoint: JsonObject | None) -> None:
        self.cursor = int(str(position["cursor"]))


async def test_bars_up_to_a_broken_one_are_published_in_order_and_recorded(
    nats_url: str,
) -> None:
    bus = await Bus.connect(nats_url, "market-bars", BusMetrics(CollectorRegistry()))
    try:
        await bus.ensure_streams()
        seen = await collect(bus, subjects.MARKET_TICK, MarketTick)
        source = BrokenAtBar(broken=4)
        publisher = TickPublisher(
            bus=bus,
            clock=ManualClock(T0),
            source=source,
            source_lock=asyncio.Lock(),
            metrics=MarketMetrics(CollectorRegistry()),
            stopped=asyncio.Event(),
            paced=source,
            resumable=source,
        )
        publisher.name_run("run")
        assert await publisher.publish_taken(await publisher.take_bars(2)) == 2
        broken = await publisher.take_bars(5)
        assert isinstance(broken.failure, ValueError)
        assert str(broken.failure) == "bar 4 is unreadable"
        assert await publisher.publish_taken(broken) == 1  # what was read before it

        await eventually(lambda: len(seen) == 3, what="the three readable bars")
        assert [t.tick_id for t in seen] == ["run-1", "run-2", "run-3"]
        assert [t.prices[0].mark_price for t in seen] == [Decimal(101), Decimal(102), Decimal(103)]
        saved = publisher.saved()
        # Three bars taken: the position after the third, not after the failed fourth.
        assert saved.ticks == 3 and saved.position == {"cursor": 3}
    finally:
        await bus.close()
