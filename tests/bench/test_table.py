"""make bench's table: comparison with earlier runs, regressions, modules that are missing
or fail, saved runs. Pure functions on Measure lists, plus the runner's own processes."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench import results, runner
from bench.measures import Better, Measure
from bench.table import Outcome, Status, compare, key, render, summary

ROOT = Path(__file__).resolve().parents[2]


def latency(value: float, target: float | None = 50.0) -> Measure:
    return Measure("risk", "validate p99", value, "µs", Better.LOWER, target, 5.0, "Verdict alone")


def throughput(value: float) -> Measure:
    return Measure("gateway", "GET / req/s", value, "req/s", Better.HIGHER, 1500.0)


@pytest.mark.parametrize(
    ("measure", "previous", "regression"),
    [
        (latency(61.0), 50.0, True),  # 22 % slower
        (latency(59.0), 50.0, False),  # 18 % slower: within the noise allowed
        (latency(20.0), 50.0, False),  # faster
        (throughput(700.0), 1000.0, True),  # 30 % fewer requests
        (throughput(850.0), 1000.0, False),
        (throughput(5000.0), 1000.0, False),
    ],
)
def test_a_figure_worse_by_more_than_a_fifth_in_its_direction_is_a_regression(
    measure: Measure, previous: float, regression: bool
) -> None:
    changes = compare([measure], {key(measure): previous})
    assert changes[key(measure)].regression is regression


def test_figures_without_a_previous_value_are_new_and_a_zero_previous_has_no_ratio() -> None:
    fresh, zero = latency(10.0), throughput(10.0)
    changes = compare([fresh, zero], {key(zero): 0.0})
    assert key(fresh) not in changes
    assert changes[key(zero)].fraction is None and not changes[key(zero)].regression
    table = render([Outcome("risk", Status.OK, (fresh, zero))], changes)
    assert "new" in table.splitlines()[2]
    alone = render([Outcome("risk", Status.OK, (fresh,))])  # a benchmark's own main()
    assert "vs last" not in alone and "new" not in alone


def test_the_table_shows_reference_ratio_target_and_the_regression() -> None:
    slow, fast = latency(80.0), throughput(2000.0)
    changes = compare([slow, fast], {key(slow): 40.0, key(fast): 2100.0})
    table = render([Outcome("risk", Status.OK, (slow,)), Outcome("gateway", Status.OK, (fast,))],
                   changes)  # fmt: skip
    risk_row, gateway_row = table.splitlines()[2:4]
    assert "80 µs" in risk_row and "Verdict alone 5.00 µs" in risk_row and "x16 " in risk_row
    assert "≤ 50 µs" in risk_row and "MISS" in risk_row and "REGRESSION +100 %" in risk_row
    assert "≥ 1,500 req/s" in gateway_row and " ok " in gateway_row and "-5 %" in gateway_row
    assert "REGRESSION" not in gateway_row
    assert summary([Outcome("risk", Status.OK, (slow, fast))], changes).startswith(
        "2 figures, 1/2 targets met; 1 regression "
    )


def test_a_missing_module_and_one_without_measure_are_not_available() -> None:
    absent = runner.collect("no_such_benchmark", quick=True)
    assert absent.status is Status.NOT_AVAILABLE and "bench.no_such_benchmark" in absent.detail
    bare = runner.collect("measures", quick=True)  # bench.measures defines no measure()
    assert bare.status is Status.NOT_AVAILABLE and "no measure()" in bare.detail
    table = render([absent, Outcome("ledger", Status.FAILED, detail="RuntimeError: boom")], {})
    assert "not available" in table and "FAILED" in table and "RuntimeError: boom" in table


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A package of small benchmark modules the runner's child process can import."""
    package = tmp_path / "fakebench"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "good.py").write_text(
        "from bench.measures import Better, Measure\n"
        "def measure(quick=False):\n"
        "    return [Measure('g', 'n', 3.0 if quick else 4.0, 'ms', Better.HIGHER, 2.0)]\n"
    )
    (package / "raises.py").write_text(
        "def measure(quick=False):\n    raise RuntimeError('boom')\n"
    )
    (package / "dies.py").write_text("import os\ndef measure(quick=False):\n    os._exit(3)\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), str(ROOT)]))
    return "fakebench"


def test_each_module_runs_in_its_own_process_and_a_crash_is_a_failed_outcome(
    modules: str,
) -> None:
    good = runner.run(f"{modules}.good", quick=True, timeout=60)
    assert good.status is Status.OK
    assert good.measures == (Measure("g", "n", 3.0, "ms", Better.HIGHER, 2.0),)
    raised = runner.run(f"{modules}.raises", quick=True, timeout=60)
    assert raised.status is Status.FAILED and raised.detail == "RuntimeError: boom"
    died = runner.run(f"{modules}.dies", quick=True, timeout=60)
    assert died.status is Status.FAILED and died.measures == ()


def test_saved_runs_compare_with_the_latest_of_the_same_kind_that_has_the_figure(
    tmp_path: Path,
) -> None:
    def at(hour: int) -> datetime:
        return datetime(2026, 1, 1, hour, tzinfo=UTC)

    machine = {"cpu": "test"}
    older = (Outcome("risk", Status.OK, (latency(40.0), throughput(900.0))),)
    newer = (Outcome("risk", Status.OK, (latency(45.0),)),)
    quick = (Outcome("risk", Status.OK, (latency(99.0),)),)
    results.save(older, False, machine, tmp_path, at(1))
    results.save(newer, False, machine, tmp_path, at(2))
    path = results.save(quick, True, machine, tmp_path, at(3))
    assert path.name == "20260101T030000Z.json"
    (tmp_path / "20260101T040000Z.json").write_text("not json")  # skipped, not fatal

    full_runs = results.earlier_runs(tmp_path, quick=False)
    assert [r.path.name for r in full_runs] == ["20260101T020000Z.json", "20260101T010000Z.json"]
    assert full_runs[0].machine == machine and full_runs[0].outcomes == newer
    previous = results.previous_values(full_runs)
    assert previous == {key(latency(0)): 45.0, key(throughput(0)): 900.0}
    assert results.previous_values(results.earlier_runs(tmp_path, quick=True)) == {
        key(latency(0)): 99.0
    }


def test_the_machine_description_names_what_the_figures_were_measured_on() -> None:
    described = results.machine()
    assert described["cores"] and described["cpu"] and described["python"]
    assert len(described["git_commit"]) == 40


def test_make_bench_quick_prints_one_table() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "risk", "--no-save"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    header = next(n for n, line in enumerate(lines) if line.startswith("group"))
    assert "reference (same run)" in lines[header] and "vs last" in lines[header]
    rows = [line for line in lines[header + 2 :] if line.startswith("risk")]
    assert any("validate one decision (3 actions) p99" in row and "≤ 50 µs" in row
               for row in rows)  # fmt: skip
    assert "saved:" not in done.stdout
