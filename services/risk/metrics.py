"""The risk service's Prometheus metrics (on the service's own registry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from services.common.contracts import Verdict


class RiskMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.verdicts = Counter(
            "arena_risk_verdicts", "Verdicts published, by agent.", ["agent"], registry=registry
        )
        self.rejections = Counter(
            "arena_risk_rejections",
            "Rejection reasons given, by reason code.",
            ["code"],
            registry=registry,
        )
        self.late = Counter(
            "arena_risk_late_verdicts",
            "Decisions answered late: the ledger did not give the portfolio before the "
            "cycle's deadline.",
            registry=registry,
        )
        self.validation_seconds = Histogram(
            "arena_risk_validation_seconds",
            "Time to validate one decision, in process.",
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05),
            registry=registry,
        )

    def record(self, verdict: Verdict, seconds: float) -> None:
        self.verdicts.labels(verdict.decision.agent_id).inc()
        self.validation_seconds.observe(seconds)
        for result in verdict.results:
            for reason in result.reasons:
                self.rejections.labels(reason.code).inc()
