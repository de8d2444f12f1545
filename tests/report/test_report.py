"""``python -m devstack report``: a season folder's exported rows to ``report.json``.

The folder is written here as a season exports it (the columns the report reads): two
runs of 600 cycles on the same market; a baseline that holds BTC, a "skilled" agent that
earns a steady edge on top of half the market, and a random baseline whose returns are
noise that differs between runs.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from devstack.report import cli
from devstack.report.runs import read_run, run_folders

CYCLES = 600


def _write(path: Path, header: list[str], rows: Sequence[Sequence[object]]) -> None:
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows)


def _season(tmp_path: Path, *, wiped_out_at: int | None = None, random_id: str = "random") -> Path:
    """The season folder; ``random_id`` names the random baseline."""
    market = np.random.default_rng(1)
    btc = 95_000 * np.cumprod(1 + 0.002 * market.standard_normal(CYCLES))
    btc_returns = np.concatenate(([0.0], btc[1:] / btc[:-1] - 1))
    cycles = [f"20250102T{i:06d}Z-{i + 1:06d}" for i in range(CYCLES)]
    for run in (0, 1):
        noise = np.random.default_rng(10 + run)
        equity = {
            "buy-and-hold": 100 * btc / btc[0],
            "skilled": 100 * np.cumprod(1 + 0.0005 + 0.5 * btc_returns),
            random_id: 100 * np.cumprod(1 + 0.002 * noise.standard_normal(CYCLES)),
        }
        if wiped_out_at is not None:  # liquidated to nothing, and nothing from then on
            equity[random_id][wiped_out_at:] = 0.0
        folder = tmp_path / f"run-{run}"
        folder.mkdir()
        # Out of order on purpose, and a cycle that did not complete.
        _write(
            folder / "cycles.csv",
            ["cycle_id", "sequence", "status"],
            [[c, i + 1, "completed"] for i, c in reversed(list(enumerate(cycles)))]
            + [["20250103T000000Z-999999", CYCLES + 1, "open"]],
        )
        _write(
            folder / "equity_snapshots.csv",
            ["id", "llm_id", "source", "equity"],
            [
                [i, agent, f"cycle:{c}", f"{series[i]:.10f}"]
                for agent, series in equity.items()
                for i, c in enumerate(cycles)
            ]
            + [[0, "skilled", "tick", "1000"]],
        )
        _write(
            folder / "market_data.csv",
            ["cycle_id", "symbol", "price", "mark_price"],
            [[c, "BTCUSDT", f"{btc[i] + 5:.2f}", f"{btc[i]:.6f}"] for i, c in enumerate(cycles)]
            + [[c, "ETHUSDT", "3000", "3000"] for c in cycles],
        )
        _write(
            folder / "llm_accounts.csv",
            ["llm_id", "provider"],
            [["buy-and-hold", "baseline"], [random_id, "baseline"], ["skilled", "test"]],
        )
        figures = {"buy-and-hold": 1, "skilled": 40, random_id: 300 + run}
        (folder / "result.json").write_text(
            json.dumps({"run": run, "agents": {a: {"trades": n} for a, n in figures.items()}})
        )
    (tmp_path / "run-2").mkdir()
    (tmp_path / "run-2" / "result.json").write_text(json.dumps({"run": 2, "error": "boom"}))
    (tmp_path / "summary.json").write_text(json.dumps({"season": {"runs": 3, "seed": 42}}))
    return tmp_path


def _report(season: Path, seed: int = 0) -> dict[str, Any]:
    args = argparse.Namespace(season=season, resamples=300, seed=seed, cycles_per_year=105_120)
    assert cli.main(args) == 0
    report: dict[str, Any] = json.loads((season / "report.json").read_text())
    return report


def test_runs_are_read_in_cycle_order_and_failed_runs_left_out(tmp_path: Path) -> None:
    season = _season(tmp_path)
    assert [n for n, _ in run_folders(season)] == [0, 1]
    run = read_run(0, season / "run-0")
    assert len(run.cycles) == CYCLES
    assert run.cycles[0].endswith("-000001")
    assert run.benchmark_returns() == pytest.approx(run.returns("buy-and-hold"), abs=1e-9)
    assert run.trades["random"] == 300


def test_the_report_separates_skill_from_the_market(tmp_path: Path) -> None:
    report = _report(_season(tmp_path))
    assert report["runs"] == 2
    assert report["cycles"] == CYCLES
    assert report["season"] == {"runs": 3, "seed": 42}
    agents = report["agents"]
    hold, skilled, rand = agents["buy-and-hold"], agents["skilled"], agents["random"]

    assert hold["beta"] == pytest.approx(1.0)
    assert hold["alpha"]["value"] == pytest.approx(0.0, abs=1e-6)
    assert hold["return_pct"]["value"] == pytest.approx(report["benchmark"]["return_pct"]["value"])
    assert skilled["beta"] == pytest.approx(0.5)
    # 0.05 % a cycle, a year of five-minute cycles: 5,256 %.
    assert skilled["alpha"]["value"] == pytest.approx(0.0005 * 105_120 * 100)
    assert skilled["alpha"]["lower"] > 0
    assert rand["alpha"]["lower"] < 0 < rand["alpha"]["upper"]
    for figures in agents.values():
        for key in ("return_pct", "sharpe", "alpha"):
            assert figures[key]["lower"] <= figures[key]["value"] <= figures[key]["upper"]

    assert skilled["rank_frequencies"] == [2, 0, 0]
    assert sum(hold["rank_frequencies"]) == 2
    assert [row["run"] for row in rand["runs"]] == [0, 1]
    values = {a: [row["return_pct"]["value"] for row in agents[a]["runs"]] for a in agents}
    assert values["random"][0] != values["random"][1]
    assert values["skilled"][0] == values["skilled"][1]
    assert skilled["across_runs"]["return_pct"]["std"] == 0.0
    assert rand["trades"] == 300.5
    assert rand["across_runs"]["trades"]["max"] == 301.0

    pairwise = report["pairwise"]
    assert pairwise["skilled"]["buy-and-hold"] + pairwise["buy-and-hold"]["skilled"] == 1.0
    assert pairwise["skilled"]["random"] > 0.95
    against_hold = report["against_baselines"]["buy-and-hold"]
    assert set(against_hold) == {"random", "skilled"}
    assert set(report["against_baselines"]) == {"buy-and-hold", "random"}
    for test in against_hold.values():
        assert test["p_value"] <= test["p_holm"] <= 1.0


def test_one_seed_one_report(tmp_path: Path) -> None:
    season = _season(tmp_path)
    first = (_report(season), _report(season), _report(season, seed=1))
    assert first[0] == first[1]
    assert first[0]["agents"]["random"]["sharpe"] != first[2]["agents"]["random"]["sharpe"]


def test_the_command_line(tmp_path: Path) -> None:
    season = _season(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "devstack", "report", str(season), "--resamples", "100"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "2 run(s), 600 cycles, 3 agents" in done.stdout
    assert set(json.loads((season / "report.json").read_text())["agents"]) == {
        "buy-and-hold",
        "random",
        "skilled",
    }
    empty = subprocess.run(
        [sys.executable, "-m", "devstack", "report", str(tmp_path / "nothing")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert empty.returncode == 1


def test_no_report_without_prices_or_with_too_few_cycles(tmp_path: Path) -> None:
    season = _season(tmp_path)
    (season / "run-1" / "market_data.csv").unlink()
    assert cli.write_report(season) is None
    for run in ("run-0", "run-1"):
        _write(season / run / "cycles.csv", ["cycle_id", "sequence", "status"], [])
        _write(season / run / "market_data.csv", ["cycle_id", "symbol", "price", "mark_price"], [])
    assert cli.write_report(season) is None
    assert not (season / "report.json").exists()


def test_an_agent_wiped_out_has_lost_everything_and_no_figure_is_nan(tmp_path: Path) -> None:
    report = _report(_season(tmp_path, wiped_out_at=CYCLES // 2))  # strict JSON: no NaN
    wiped = report["agents"]["random"]
    assert wiped["return_pct"]["value"] == pytest.approx(-100.0)
    assert wiped["max_drawdown_pct"] == pytest.approx(100.0)
