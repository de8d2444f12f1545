"""Prometheus counters of the bus, on the service's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from services.common.metric_set import MetricSet


class BusMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        counter = MetricSet(registry, "arena_messages_").counter
        self.consumed = counter(
            "consumed", "Messages handled successfully, by consumer.", "consumer"
        )
        self.failed = counter(
            "failed", "Handler failures (the message is redelivered), by consumer.", "consumer"
        )
        self.retried = counter(
            "retried_unavailable",
            "Deliveries that failed because a dependency was unavailable (retried, never "
            "dead-lettered), by consumer.",
            "consumer",
        )
        self.redelivered = counter(
            "redelivered", "Messages received more than once, by consumer.", "consumer"
        )
        self.dead_lettered = counter(
            "dead_lettered",
            "Messages sent to the dead-letter subject, by consumer and reason.",
            "consumer",
            "reason",
        )
        self.published = counter(
            "published", "Events published to JetStream, by message type.", "type"
        )
        self.duplicates = counter(
            "duplicate_publish",
            "Publishes JetStream dropped as duplicates of an earlier Nats-Msg-Id.",
            "type",
        )
