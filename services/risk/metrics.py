"""The risk service's Prometheus metrics (on the service's own registry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from services.common.contracts import Verdict
from services.common.metric_set import MetricSet


class RiskMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        m = MetricSet(registry, "arena_risk_")
        self.verdicts = m.counter("verdicts", "Verdicts published, by agent.", "agent")
        self.rejections = m.counter(
            "rejections", "Rejection reasons given, by reason code.", "code"
        )
        self.late = m.counter(
            "late_verdicts",
            "Decisions answered late: the ledger did not give the portfolio before the "
            "cycle's deadline.",
        )
        self.validation_seconds = m.histogram(
            "validation_seconds",
            "Time to validate one decision, in process.",
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05),
        )

    def record(self, verdict: Verdict, seconds: float) -> None:
        self.verdicts.labels(verdict.decision.agent_id).inc()
        self.validation_seconds.observe(seconds)
        for result in verdict.results:
            for reason in result.reasons:
                self.rejections.labels(reason.code).inc()
