"""Small hand-written season folders (report.json in the shape of docs/seasons.md#report)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

# A minimal PNG: the 8-byte signature and enough after it to be recognisable.
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


def interval(value: float, lower: float, upper: float) -> dict[str, float]:
    return {"value": value, "lower": lower, "upper": upper}


def agent_figures(ret: float, rank_frequencies: list[int]) -> dict[str, Any]:
    return {
        "cycles": 289,
        "return_pct": interval(ret, ret - 5.0, ret + 5.0),
        "sharpe": interval(1.25, -0.5, 3.0),
        "alpha": interval(12.5, -40.0, 65.25),
        "beta": 0.92,
        "sortino": None,
        "max_drawdown_pct": 4.8,
        "calmar": None,
        "trades": 85.0,
        "rank_frequencies": rank_frequencies,
        "across_runs": {},
        "runs": [],
    }


def report(agents: dict[str, float], *, runs: int = 2, cycles: int = 288) -> dict[str, Any]:
    """A report of ``agents`` (id -> return in percent), ranked by return."""
    ranked = sorted(agents, key=lambda a: -agents[a])
    matrix: dict[str, dict[str, float]] = {a: {} for a in agents}
    for a in agents:
        for b in agents:
            if a != b:
                matrix[a][b] = 0.75 if ranked.index(a) < ranked.index(b) else 0.25
    return {
        "season": {"data": "data/binance", "from": "2025-01-02", "to": "2025-01-03", "runs": runs},
        "runs": runs,
        "cycles": cycles,
        "method": {"cycles_per_year": 105120, "level": 0.95, "resamples": 2000, "seed": 0},
        "benchmark": {"symbol": "BTCUSDT", "return_pct": interval(1.0, -2.0, 4.0)},
        "agents": {
            a: agent_figures(agents[a], [runs if i == ranked.index(a) else 0 for i in range(3)])
            for a in agents
        },
        "pairwise": matrix,
        "against_baselines": {},
    }


def write_season(
    root: Path, season_id: str, body: dict[str, Any], *, mtime: float | None = None
) -> Path:
    folder = root / season_id
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "report.json"
    path.write_text(json.dumps(body), encoding="utf-8")
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return folder
