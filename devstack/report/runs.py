"""A season folder's runs as the report needs them: each agent's equity and the
benchmark's price at every completed cycle, read from the exported tables.

An agent's equity at a cycle is its ``equity_snapshots`` row of source ``cycle:<id>``
(one per agent and cycle, valued at the cycle's marks); the benchmark's price is its
mark price (else its last price) in that cycle's ``market_data`` row. Only the cycles
where every agent and the benchmark have a figure are kept, in the cycles' order.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
import numpy.typing as npt

BENCHMARK = "BTCUSDT"
CYCLE_SOURCE = "cycle:"


@dataclass(frozen=True)
class Run:
    number: int
    cycles: tuple[str, ...]
    equity: dict[str, npt.NDArray[np.float64]]  # agent -> equity at each cycle
    benchmark: npt.NDArray[np.float64]  # the benchmark's price at each cycle
    trades: dict[str, int]
    providers: dict[str, str]

    def returns(self, agent: str) -> npt.NDArray[np.float64]:
        return per_cycle_returns(self.equity[agent])

    def benchmark_returns(self) -> npt.NDArray[np.float64]:
        return per_cycle_returns(self.benchmark)


def per_cycle_returns(series: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Per-cycle returns; after an equity of zero (an account wiped out) each one is 0:
    nothing is left to gain or lose, and no return is undefined."""
    before, after = series[:-1], series[1:]
    ratio = np.divide(after, before, out=np.ones_like(after), where=before > 0.0)
    return ratio - 1.0


def _rows(path: Path) -> Iterator[dict[str, str]]:
    """Row by row: a season of months has millions of tick snapshots."""
    with path.open(newline="") as rows:
        yield from csv.DictReader(rows)


def run_folders(season: Path) -> list[tuple[int, Path]]:
    """The season's ``run-<k>`` folders that finished (their ``result.json`` has no
    ``error``), by k."""
    found = []
    for folder in season.glob("run-*"):
        result = folder / "result.json"
        if not folder.name[4:].isdigit() or not result.exists():
            continue
        if "error" in json.loads(result.read_text()):
            continue
        found.append((int(folder.name[4:]), folder))
    return sorted(found)


def read_run(number: int, folder: Path, benchmark: str = BENCHMARK) -> Run:
    order = [
        row["cycle_id"]
        for row in sorted(_rows(folder / "cycles.csv"), key=lambda row: int(row["sequence"]))
        if row["status"] == "completed"
    ]
    equity: dict[str, dict[str, float]] = defaultdict(dict)
    for row in _rows(folder / "equity_snapshots.csv"):
        if row["source"].startswith(CYCLE_SOURCE):
            equity[row["llm_id"]][row["source"][len(CYCLE_SOURCE) :]] = float(
                Decimal(row["equity"])
            )
    prices = {
        row["cycle_id"]: float(Decimal(row["mark_price"] or row["price"]))
        for row in _rows(folder / "market_data.csv")
        if row["symbol"] == benchmark
    }
    kept = tuple(c for c in order if c in prices and all(c in e for e in equity.values()))
    result = json.loads((folder / "result.json").read_text())
    return Run(
        number=number,
        cycles=kept,
        equity={agent: np.array([by_cycle[c] for c in kept]) for agent, by_cycle in equity.items()},
        benchmark=np.array([prices[c] for c in kept]),
        trades={agent: int(f["trades"]) for agent, f in result.get("agents", {}).items()},
        providers={row["llm_id"]: row["provider"] for row in _rows(folder / "llm_accounts.csv")},
    )


def common_cycles(runs: list[Run]) -> tuple[str, ...]:
    """The cycles every run kept, in the first run's order."""
    shared = set(runs[0].cycles).intersection(*(run.cycles for run in runs[1:]))
    return tuple(c for c in runs[0].cycles if c in shared)


def on_cycles(
    run: Run, series: npt.NDArray[np.float64], cycles: tuple[str, ...]
) -> npt.NDArray[np.float64]:
    """Per-cycle returns of ``series`` (one of ``run``'s, a figure per cycle it kept) on
    ``cycles`` only."""
    position = {c: i for i, c in enumerate(run.cycles)}
    return per_cycle_returns(series[[position[c] for c in cycles]])
