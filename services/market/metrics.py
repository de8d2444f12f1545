"""The market service's Prometheus metrics (on the service's own registry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

CYCLE_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 180, 240, 300, 600)


class MarketMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.cycle_duration = Histogram(
            "arena_cycle_duration_seconds",
            "Time from cycle start to its completion, completed cycles only.",
            buckets=CYCLE_BUCKETS,
            registry=registry,
        )
        self.cycles = Counter(
            "arena_cycles",
            "Cycles by outcome: completed, failed (no completion in time or not started), "
            "skipped (missed their slot).",
            ["outcome"],
            registry=registry,
        )
        self.ticks = Counter("arena_market_ticks", "Market ticks published.", registry=registry)
        self.ticks_unpublished = Counter(
            "arena_market_ticks_unpublished",
            "Live market ticks skipped because they could not be published (NATS unavailable).",
            registry=registry,
        )
