"""The agent's Prometheus metrics (on the service's own registry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class AgentMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.decisions = Counter(
            "arena_agent_decisions",
            "Decisions published, by agent and how they came about.",
            ["agent", "outcome"],
            registry=registry,
        )
        self.latency = Histogram(
            "arena_agent_decision_latency_seconds",
            "From receiving a snapshot to publishing its decision.",
            ["agent"],
            buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=registry,
        )
        self.skipped = Counter(
            "arena_agent_snapshots_skipped",
            "Snapshots received after their decision deadline, not decided.",
            ["agent"],
            registry=registry,
        )
