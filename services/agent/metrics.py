"""The agent's Prometheus metrics (on the service's own registry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from services.common.contracts import LlmCall
from services.common.metric_set import MetricSet


class AgentMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        # Every series is one agent's: a process may host several.
        m = MetricSet(registry, "arena_agent_", by=("agent",))
        self.decisions = m.counter(
            "decisions", "Decisions published, by agent and how they came about.", "outcome"
        )
        self.latency = m.histogram(
            "decision_latency_seconds",
            "From receiving a snapshot to publishing its decision.",
            buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
        )
        self.skipped = m.counter(
            "snapshots_skipped", "Snapshots received after their decision deadline, not decided."
        )
        self.llm_calls = m.counter(
            "llm_calls",
            "Calls to the model provider, by result (ok or error).",
            "provider",
            "result",
        )
        self.llm_tokens = m.counter(
            "llm_tokens", "Tokens billed, by kind (prompt or completion).", "kind"
        )
        self.llm_cost = m.counter(
            "llm_cost_usd", "Estimated cost of the calls, from the line-up's prices."
        )
        self.llm_latency = m.histogram(
            "llm_call_seconds",
            "Duration of one call to the provider.",
            buckets=(0.1, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300),
        )
        self.parse_failures = m.counter("parse_failures", "Answers that held no usable decision.")
        self.disabled = m.gauge(
            "disabled", "1 while the agent does not call its model (no key, 401/403, circuit open)."
        )

    def record_call(self, call: LlmCall) -> None:
        agent = call.agent_id
        self.llm_calls.labels(agent, call.provider, "ok" if call.success else "error").inc()
        self.llm_tokens.labels(agent, "prompt").inc(call.prompt_tokens)
        self.llm_tokens.labels(agent, "completion").inc(call.completion_tokens)
        self.llm_cost.labels(agent).inc(float(call.estimated_cost))
        self.llm_latency.labels(agent).observe(call.response_time_ms / 1000)
