"""The ledger's Prometheus metrics, on the service's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from services.common.metric_set import MetricSet

PREFIX = "arena_ledger_"


class LedgerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        m = MetricSet(registry, PREFIX)
        counter, gauge = m.counter, m.gauge

        self.verdicts_applied = counter(
            "verdicts_applied", "Verdicts applied (each once, duplicates excluded)."
        )
        self.rejections = counter(
            "rejections",
            "Actions recorded in rejected_decisions, by reason code (risk's or the ledger's).",
            "code",
        )
        self.positions_opened = counter("positions_opened", "Positions opened.")
        self.positions_closed = counter("positions_closed", "Positions closed.")
        self.duplicates = counter(
            "duplicates_skipped",
            "Messages or verdicts already applied, skipped without effect, by consumer.",
            "consumer",
        )
        self.cycles_completed = counter(
            "cycles_completed", "Cycles completed, by whether the deadline ran out.", "timed_out"
        )
        self.equity = gauge(
            "equity_usd", "Equity per agent: balance + margin in use + unrealized PnL.", "agent"
        )
        self.tick_exits = counter(
            "tick_exits",
            "Positions closed by a tick, by exit reason (stop_loss, take_profit, liquidation).",
            "reason",
        )
        self.snapshot_liquidations = counter(
            "snapshot_liquidations",
            "Positions a cycle snapshot's mark found at or past their liquidation price.",
        )
        self.outbox_failed = counter(
            "outbox_failed", "Outbox rows that cannot be decoded, set aside instead of published."
        )
        self.funding_payments = counter("funding_payments", "Funding payments booked.")
        self.stale_marks = counter(
            "stale_marks",
            "Symbols of a tick older than their latest applied mark, left at that newer mark.",
        )
        self.outbox_pending = gauge("outbox_pending", "Outbox events not published yet.")
        self.retention_removed = counter(
            "retention_removed",
            "Rows deleted by retention, by table (equity_snapshots: rows thinned).",
            "table",
        )
        self.retention_failures = counter(
            "retention_failures",
            "Retention passes that failed (e.g. Postgres down); the next pass retries.",
        )
