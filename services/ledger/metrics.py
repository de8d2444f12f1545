"""The ledger's Prometheus metrics, on the service's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class LedgerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.verdicts_applied = Counter(
            "arena_ledger_verdicts_applied",
            "Verdicts applied (each once, duplicates excluded).",
            registry=registry,
        )
        self.rejections = Counter(
            "arena_ledger_rejections",
            "Actions recorded in rejected_decisions, by reason code (risk's or the ledger's).",
            ["code"],
            registry=registry,
        )
        self.positions_opened = Counter(
            "arena_ledger_positions_opened", "Positions opened.", registry=registry
        )
        self.positions_closed = Counter(
            "arena_ledger_positions_closed", "Positions closed.", registry=registry
        )
        self.duplicates = Counter(
            "arena_ledger_duplicates_skipped",
            "Messages or verdicts already applied, skipped without effect, by consumer.",
            ["consumer"],
            registry=registry,
        )
        self.cycles_completed = Counter(
            "arena_ledger_cycles_completed",
            "Cycles completed, by whether the deadline ran out.",
            ["timed_out"],
            registry=registry,
        )
        self.equity = Gauge(
            "arena_ledger_equity_usd",
            "Equity per agent: balance + margin in use + unrealized PnL.",
            ["agent"],
            registry=registry,
        )
        self.tick_exits = Counter(
            "arena_ledger_tick_exits",
            "Positions closed by a tick, by exit reason (stop_loss, take_profit, liquidation).",
            ["reason"],
            registry=registry,
        )
        self.snapshot_liquidations = Counter(
            "arena_ledger_snapshot_liquidations",
            "Positions a cycle snapshot's mark found at or past their liquidation price.",
            registry=registry,
        )
        self.outbox_failed = Counter(
            "arena_ledger_outbox_failed",
            "Outbox rows that cannot be decoded, set aside instead of published.",
            registry=registry,
        )
        self.funding_payments = Counter(
            "arena_ledger_funding_payments", "Funding payments booked.", registry=registry
        )
        self.stale_marks = Counter(
            "arena_ledger_stale_marks",
            "Symbols of a tick older than their latest applied mark, left at that newer mark.",
            registry=registry,
        )
        self.outbox_pending = Gauge(
            "arena_ledger_outbox_pending", "Outbox events not published yet.", registry=registry
        )
        self.retention_removed = Counter(
            "arena_ledger_retention_removed",
            "Rows deleted by retention, by table (equity_snapshots: rows thinned).",
            ["table"],
            registry=registry,
        )
        self.retention_failures = Counter(
            "arena_ledger_retention_failures",
            "Retention passes that failed (e.g. Postgres down); the next pass retries.",
            registry=registry,
        )
