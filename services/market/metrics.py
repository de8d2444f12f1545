"""The market service's Prometheus metrics (on the service's own registry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from services.common.metric_set import MetricSet

CYCLE_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 180, 240, 300, 600)


class MarketMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        m = MetricSet(registry, "arena_")
        self.cycle_duration = m.histogram(
            "cycle_duration_seconds",
            "Time from cycle start to its completion, completed cycles only.",
            buckets=CYCLE_BUCKETS,
        )
        self.cycles = m.counter(
            "cycles",
            "Cycles by outcome: completed, failed (no completion in time or not started), "
            "skipped (missed their slot).",
            "outcome",
        )
        self.ticks = m.counter("market_ticks", "Market ticks published.")
        self.ticks_unpublished = m.counter(
            "market_ticks_unpublished",
            "Live market ticks skipped because they could not be published (NATS unavailable).",
        )
