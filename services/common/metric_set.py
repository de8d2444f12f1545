"""Declaring a service's Prometheus metrics: the name prefix and the registry said once."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class MetricSet:
    """Makes metrics named ``<prefix><name>`` on one registry; ``labels`` name their series,
    after the ``by`` labels every metric of the set carries."""

    def __init__(
        self, registry: CollectorRegistry, prefix: str, *, by: tuple[str, ...] = ()
    ) -> None:
        self.registry = registry
        self.prefix = prefix
        self.by = by

    def counter(self, name: str, documentation: str, *labels: str) -> Counter:
        return Counter(self.prefix + name, documentation, self.by + labels, registry=self.registry)

    def gauge(self, name: str, documentation: str, *labels: str) -> Gauge:
        return Gauge(self.prefix + name, documentation, self.by + labels, registry=self.registry)

    def histogram(
        self, name: str, documentation: str, *labels: str, buckets: Sequence[float]
    ) -> Histogram:
        return Histogram(
            self.prefix + name,
            documentation,
            self.by + labels,
            buckets=buckets,
            registry=self.registry,
        )
