"""Prometheus counters of the bus, on the service's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class BusMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.consumed = Counter(
            "arena_messages_consumed",
            "Messages handled successfully, by consumer.",
            ["consumer"],
            registry=registry,
        )
        self.failed = Counter(
            "arena_messages_failed",
            "Handler failures (the message is redelivered), by consumer.",
            ["consumer"],
            registry=registry,
        )
        self.retried = Counter(
            "arena_messages_retried_unavailable",
            "Deliveries that failed because a dependency was unavailable (retried, never "
            "dead-lettered), by consumer.",
            ["consumer"],
            registry=registry,
        )
        self.redelivered = Counter(
            "arena_messages_redelivered",
            "Messages received more than once, by consumer.",
            ["consumer"],
            registry=registry,
        )
        self.dead_lettered = Counter(
            "arena_messages_dead_lettered",
            "Messages sent to the dead-letter subject, by consumer and reason.",
            ["consumer", "reason"],
            registry=registry,
        )
        self.published = Counter(
            "arena_messages_published",
            "Events published to JetStream, by message type.",
            ["type"],
            registry=registry,
        )
        self.duplicates = Counter(
            "arena_messages_duplicate_publish",
            "Publishes JetStream dropped as duplicates of an earlier Nats-Msg-Id.",
            ["type"],
            registry=registry,
        )
