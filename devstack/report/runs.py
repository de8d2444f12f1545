"""A season folder's runs as the report needs them: each agent's equity and the
benchmark's price at every completed cycle, read from the exported tables.

An agent's equity at a cycle is its ``equity_snapshots`` row of source ``cycle:<id>``
(one per agent and cycle, valued at the cycle's marks); the benchmark's price is its
mark price (else its last price) in that cycle's ``market_data`` row. Only the cycles
where every agent and the benchmark have a figure are kept, in the cycles' order.

Beside the equity, at each kept cycle: what the agent had paid in fees and funding by
then (the snapshot's ``total_fees`` plus ``total_funding``: the same sums as its
``trades``' fees and ``funding_payments``' amounts, taken exactly when the equity was),
whether it held a position (the snapshot's ``margin_used`` above zero), and what its
model calls had cost by then (``llm_api_calls``' ``estimated_cost`` of every earlier
cycle, in USD; a call of an unknown cycle counts from the first). A cycle's snapshot is
taken before its decisions are applied, so a cycle's calls count from the next cycle on,
as the fees of the trades they lead to do.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import numpy.typing as npt

from devstack.report.activity import Activity, read_activity, rows
from services.common.evidence import per_cycle_returns

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
    paid: dict[str, npt.NDArray[np.float64]]  # agent -> fees and funding paid by each cycle
    exposed: dict[str, npt.NDArray[np.bool_]]  # agent -> a position open at each cycle
    llm_cost: dict[str, npt.NDArray[np.float64]]  # agent -> model calls' cost by each cycle
    activity: dict[str, Activity]
    # The cycles' typical spacing in the data's time (their median), None under two cycles.
    cycle_seconds: float | None = None

    def returns(self, agent: str) -> npt.NDArray[np.float64]:
        return per_cycle_returns(self.equity[agent])

    def benchmark_returns(self) -> npt.NDArray[np.float64]:
        return per_cycle_returns(self.benchmark)


def cycle_seconds(runs: Sequence[Run]) -> float | None:
    """The runs' typical cycle spacing in the data (median); None when no run has two
    cycles."""
    spacings = [run.cycle_seconds for run in runs if run.cycle_seconds]
    return float(np.median(spacings)) if spacings else None


def _rows(path: Path) -> Iterator[dict[str, str]]:
    """Row by row: a season of months has millions of tick snapshots."""
    with path.open(newline="") as lines:
        yield from csv.DictReader(lines)


def _decimal(text: str | None) -> float:
    return float(Decimal(text)) if text else 0.0


def _cumulated_cost(
    folder: Path, sequence: dict[str, int], kept: tuple[str, ...]
) -> dict[str, npt.NDArray[np.float64]]:
    """Per agent, its model calls' cost before each kept cycle (by the cycles' sequence)."""
    calls: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for row in rows(folder / "llm_api_calls.csv"):
        made_at = sequence.get(row["cycle_id"] or "", 0)
        calls[row["llm_id"]].append((made_at, _decimal(row["estimated_cost"])))
    kept_at = np.array([sequence[c] for c in kept], dtype=np.int64)
    found: dict[str, npt.NDArray[np.float64]] = {}
    for agent, made in calls.items():
        at: npt.NDArray[np.int64] = np.array([a for a, _ in made], dtype=np.int64)
        cost = np.array([c for _, c in made], dtype=np.float64)
        order = np.argsort(at, kind="stable")
        total = np.concatenate(([0.0], np.cumsum(cost[order])))
        found[agent] = total[np.searchsorted(at[order], kept_at, side="left")]
    return found


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
    cycles = sorted(_rows(folder / "cycles.csv"), key=lambda row: int(row["sequence"]))
    sequence = {row["cycle_id"]: int(row["sequence"]) for row in cycles}
    order = [row["cycle_id"] for row in cycles if row["status"] == "completed"]
    equity: dict[str, dict[str, float]] = defaultdict(dict)
    paid: dict[str, dict[str, float]] = defaultdict(dict)
    margin: dict[str, dict[str, float]] = defaultdict(dict)
    for row in _rows(folder / "equity_snapshots.csv"):
        if row["source"].startswith(CYCLE_SOURCE):
            agent, cycle = row["llm_id"], row["source"][len(CYCLE_SOURCE) :]
            equity[agent][cycle] = _decimal(row["equity"])
            paid[agent][cycle] = _decimal(row.get("total_fees")) + _decimal(
                row.get("total_funding")
            )
            margin[agent][cycle] = _decimal(row.get("margin_used"))
    prices = {
        row["cycle_id"]: float(Decimal(row["mark_price"] or row["price"]))
        for row in _rows(folder / "market_data.csv")
        if row["symbol"] == benchmark
    }
    kept = tuple(c for c in order if c in prices and all(c in e for e in equity.values()))
    started = {
        row["cycle_id"]: datetime.fromisoformat(row["started_at"]).timestamp()
        for row in cycles
        if row.get("started_at")
    }
    times = [started[c] for c in kept if c in started]
    result = json.loads((folder / "result.json").read_text())
    costs = _cumulated_cost(folder, sequence, kept)
    zero = np.zeros(len(kept))
    return Run(
        number=number,
        cycles=kept,
        equity={agent: np.array([by_cycle[c] for c in kept]) for agent, by_cycle in equity.items()},
        benchmark=np.array([prices[c] for c in kept]),
        trades={agent: int(f["trades"]) for agent, f in result.get("agents", {}).items()},
        providers={row["llm_id"]: row["provider"] for row in _rows(folder / "llm_accounts.csv")},
        paid={agent: np.array([by_cycle[c] for c in kept]) for agent, by_cycle in paid.items()},
        cycle_seconds=float(np.median(np.diff(times))) if len(times) > 1 else None,
        exposed={
            agent: np.array([by_cycle[c] > 0.0 for c in kept], dtype=np.bool_)
            for agent, by_cycle in margin.items()
        },
        llm_cost={agent: costs.get(agent, zero) for agent in equity},
        activity=read_activity(folder),
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
