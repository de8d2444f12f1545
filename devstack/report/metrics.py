"""The report's figures of what agents did (trading, calibration, reliability, model use),
from their rows (``devstack.report.activity``): pure, rows in, JSON-ready values out.

Each function takes the activities of one run, or of several runs pooled (an agent's
headline figures): rates pool the rows (the win rate of every closed trade of every
run), amounts are per run (their mean over the runs). A figure that is undefined (no
closed trade, no scored decision, no call) is None, never NaN.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.stats import binned_statistic

from devstack.report.activity import ERROR_KINDS, Activity

CALIBRATION_BINS = 10  # of confidence, each a tenth wide; the last one includes 1.0
LATENCY_PERCENTILES = (50.0, 95.0)
RELIABILITY_KEYS = (
    *(kind for kind, _ in ERROR_KINDS),
    "timeouts",
    "other_errors",
    "missed",
    "rejections",
)


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if values else 0.0


def trading(
    activities: Sequence[Activity],
    equity: Sequence[npt.NDArray[np.float64]],
    exposed: Sequence[npt.NDArray[np.bool_]],
    days: Sequence[float],
) -> dict[str, Any]:
    """The closed trades per run, their win rate and profit factor, exposure (the share
    of cycles with a position open) and turnover (traded notional over mean equity, per
    day; the mean of the runs'). Given one entry per run: its equity and exposure at
    each cycle, and the days the run lasted."""
    pnl = np.array([p for a in activities for p in a.closed_pnl], dtype=np.float64)
    profit = float(pnl[pnl > 0].sum())
    loss = float(-pnl[pnl < 0].sum())
    turnovers = [
        a.traded_notional / float(np.mean(e)) / d
        for a, e, d in zip(activities, equity, days, strict=True)
        if d > 0 and float(np.mean(e)) > 0
    ]
    return {
        "closed_trades": len(pnl) / max(len(activities), 1),
        "win_rate": float(np.mean(pnl > 0)) if len(pnl) else None,
        "profit_factor": profit / loss if loss > 0 else None,
        "exposure": float(np.mean(np.concatenate(exposed))) if exposed else None,
        "turnover_per_day": _mean(turnovers) if turnovers else None,
    }


def calibration(activities: Sequence[Activity]) -> dict[str, Any]:
    """The stated confidence of each scored decision against its outcome (1: its
    position closed with a profit): Brier score (mean squared difference) and the
    reliability table, one row per non-empty tenth of confidence."""
    scored = [s for a in activities for s in a.scored]
    if not scored:
        return {"brier": None, "decisions": 0, "bins": []}
    confidence = np.array([c for c, _ in scored], dtype=np.float64)
    won = np.array([w for _, w in scored], dtype=np.float64)
    edges = np.arange(CALIBRATION_BINS + 1) / CALIBRATION_BINS  # 0.7, not 0.7000000000000001
    count = binned_statistic(confidence, won, "count", bins=edges).statistic
    mean_confidence = binned_statistic(confidence, confidence, "mean", bins=edges).statistic
    frequency = binned_statistic(confidence, won, "mean", bins=edges).statistic
    bins = [
        {
            "lower": float(edges[i]),
            "upper": float(edges[i + 1]),
            "count": int(count[i]),
            "mean_confidence": float(mean_confidence[i]),
            "win_frequency": float(frequency[i]),
        }
        for i in range(CALIBRATION_BINS)
        if count[i] > 0
    ]
    return {
        "brier": float(np.mean((confidence - won) ** 2)),
        "decisions": len(scored),
        "bins": bins,
    }


def reliability(activities: Sequence[Activity]) -> dict[str, Any]:
    """Per 100 decisions: each kind of forced HOLD, the cycles missed and the rejected
    actions; the rejections' reason codes counted (an action can have several)."""
    decisions = sum(a.decisions for a in activities)
    counts: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for a in activities:
        counts.update(a.errors)
        counts["missed"] += a.missed
        counts["rejections"] += a.rejections
        reasons.update(a.rejection_reasons)
    return {
        "decisions": decisions,
        "per_100": {
            key: counts[key] * 100.0 / decisions if decisions else None for key in RELIABILITY_KEYS
        },
        "rejections_by_reason": dict(sorted(reasons.items())),
    }


def llm_usage(activities: Sequence[Activity], return_pct: float) -> dict[str, Any]:
    """Model calls, tokens and cost per run (means over the runs given), response time
    percentiles over every call, cost per decision and per point of ``return_pct`` (the
    return the decisions earned, net of fees and funding; None unless positive)."""
    runs = max(len(activities), 1)
    latencies = np.array([ms for a in activities for ms in a.latencies_ms], dtype=np.float64)
    p50: float | None = None
    p95: float | None = None
    if len(latencies):
        p50, p95 = (float(v) for v in np.percentile(latencies, LATENCY_PERCENTILES))
    cost = sum(a.cost_usd for a in activities) / runs
    decisions = sum(a.decisions for a in activities) / runs
    return {
        "calls": len(latencies) / runs,
        "prompt_tokens": sum(a.prompt_tokens for a in activities) / runs,
        "completion_tokens": sum(a.completion_tokens for a in activities) / runs,
        "latency_ms_p50": p50,
        "latency_ms_p95": p95,
        "cost_usd": cost,
        "cost_per_decision_usd": cost / decisions if decisions else None,
        "cost_per_return_point_usd": cost / return_pct if return_pct > 0 else None,
    }
