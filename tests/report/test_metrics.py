"""The report's figures of what agents did, on a run small enough to work out by hand.

Five completed cycles and one that timed out, two agents: ``llm`` (a model that trades
a little, fails twice and is billed) and ``hold`` (a baseline that never trades). Every
expected figure below is computed from the rows written here, in the comments.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from devstack.report import cli
from devstack.report.activity import error_kind, pg_array, read_activity
from tests.report.test_report import _write

CYCLES = [f"c{i}" for i in range(1, 7)]  # c6 timed out: llm never answered
PPY = 105_120  # five-minute cycles: 288 a day

# llm's cycle snapshots (taken before the cycle's decisions): equity, margin used, fees
# and funding paid by then.
LLM_EQUITY = [100, 101, 99, 102, 104]
LLM_MARGIN = [0, 10, 10, 0, 10]
LLM_FEES = [0, 1, 1, 2, 2]
LLM_FUNDING = [0, 0, 0.5, 0.5, 0.5]


def _action(action: str, symbol: str | None, confidence: float | None) -> dict[str, Any]:
    return {"action": action, "symbol": symbol, "confidence": confidence}


def _decision(
    cycle: str,
    agent: str,
    actions: list[dict[str, Any]],
    results: list[dict[str, Any]],
    error: str = "",
) -> list[object]:
    return [cycle, agent, json.dumps(actions), json.dumps(results), error]


def _run(folder: Path) -> None:
    folder.mkdir(parents=True)
    _write(
        folder / "cycles.csv",
        ["cycle_id", "sequence", "status", "expected_agents"],
        [[c, i + 1, "completed", "{llm,hold}"] for i, c in enumerate(CYCLES[:5])]
        + [["c6", 6, "timed_out", "{llm,hold}"]],
    )
    _write(
        folder / "equity_snapshots.csv",
        ["id", "llm_id", "source", "equity", "margin_used", "total_fees", "total_funding"],
        [
            [i, "llm", f"cycle:{c}", LLM_EQUITY[i], LLM_MARGIN[i], LLM_FEES[i], LLM_FUNDING[i]]
            for i, c in enumerate(CYCLES[:5])
        ]
        + [[10 + i, "hold", f"cycle:{c}", 100, 0, 0, 0] for i, c in enumerate(CYCLES[:5])],
    )
    _write(
        folder / "market_data.csv",
        ["cycle_id", "symbol", "price", "mark_price"],
        [[c, "BTCUSDT", p, p] for c, p in zip(CYCLES[:5], [100, 102, 101, 103, 104], strict=True)],
    )
    _write(
        folder / "llm_accounts.csv",
        ["llm_id", "provider"],
        [["llm", "openai"], ["hold", "baseline"]],
    )
    _write(
        folder / "decisions.csv",
        ["cycle_id", "llm_id", "actions", "results", "error"],
        [
            # Opens p1 at 82 % confidence: it closes with a profit.
            _decision(
                "c1",
                "llm",
                [_action("BUY", "BTCUSDT", 0.82)],
                [{"index": 0, "outcome": "opened", "approved": True, "position_id": "p1"}],
            ),
            # Opens p2 at 35 % (it closes at a loss); SOL is rejected: unscored.
            _decision(
                "c2",
                "llm",
                [_action("BUY", "ETHUSDT", 0.35), _action("SELL", "SOLUSDT", 0.9)],
                [
                    {"index": 0, "outcome": "opened", "approved": True, "position_id": "p2"},
                    {"index": 1, "outcome": "rejected", "approved": False},
                ],
            ),
            _decision(
                "c3",
                "llm",
                [_action("HOLD", None, None)],
                [{"index": 0, "outcome": "held", "approved": True}],
                "parse error: no JSON object in the answer",
            ),
            _decision(
                "c4",
                "llm",
                [_action("HOLD", None, None)],
                [{"index": 0, "outcome": "held", "approved": True}],
                "provider error: no answer within 30.0s",
            ),
            # Opens p3, still open at the end: unscored.
            _decision(
                "c5",
                "llm",
                [_action("BUY", "BTCUSDT", 0.6)],
                [{"index": 0, "outcome": "opened", "approved": True, "position_id": "p3"}],
            ),
        ]
        + [
            _decision(c, "hold", [_action("HOLD", None, None)], [{"index": 0, "outcome": "held"}])
            for c in CYCLES
        ],
    )
    _write(
        folder / "trades.csv",
        ["llm_id", "position_id", "entry_price", "exit_price", "quantity", "realized_pnl"],
        [
            ["llm", "p1", "100", "", "1", ""],  # notional 100
            ["llm", "p1", "100", "103", "1", "3"],  # 103, a win of 3
            ["llm", "p2", "50", "", "2", ""],  # 100
            ["llm", "p2", "50", "49.5", "2", "-1"],  # 99, a loss of 1
            ["llm", "p3", "100", "", "0.5", ""],  # 50
        ],
    )
    _write(
        folder / "rejected_decisions.csv",
        ["llm_id", "reason_codes"],
        [["llm", "{max_leverage,insufficient_margin}"]],
    )
    _write(
        folder / "llm_api_calls.csv",
        [
            "llm_id",
            "cycle_id",
            "response_time_ms",
            "prompt_tokens",
            "completion_tokens",
            "estimated_cost",
        ],
        [
            ["llm", "c1", 100, 10, 5, "0.5"],
            ["llm", "c2", 200, 20, 5, "0.5"],
            ["llm", "c4", 300, 30, 5, "1.0"],
            ["llm", "c4", 400, 0, 0, "0"],  # the call that timed out
        ],
    )
    (folder / "result.json").write_text(
        json.dumps({"agents": {"llm": {"trades": 5}, "hold": {"trades": 0}}})
    )


def _report(season: Path) -> dict[str, Any]:
    args = argparse.Namespace(season=season, resamples=200, seed=0, cycles_per_year=PPY)
    assert cli.main(args) == 0  # written strictly: no NaN anywhere
    report: dict[str, Any] = json.loads((season / "report.json").read_text())
    return report


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    season = tmp_path_factory.mktemp("season")
    _run(season / "run-0")
    _run(season / "run-1")  # the same run again: pooled rates equal the run's
    return _report(season)


def test_return_before_fees_and_funding_and_after_the_model_bill(
    report: dict[str, Any],
) -> None:
    for figures in (report["agents"]["llm"], report["agents"]["llm"]["runs"][0]):
        assert figures["return_pct"]["value"] == pytest.approx(4.0)  # 100 -> 104
        # Fees (2) and funding (0.5) paid by the last cycle added back: 106.5.
        assert figures["gross_return_pct"]["value"] == pytest.approx(6.5)
        # The calls before the last cycle cost 2 (c4's are charged from c5 on): 102.
        assert figures["net_return_pct"]["value"] == pytest.approx(2.0)
        assert figures["llm_cost_usd"] == pytest.approx(2.0)
        for key in ("gross_return_pct", "net_return_pct"):
            interval = figures[key]
            assert interval["lower"] <= interval["value"] <= interval["upper"]
    hold = report["agents"]["hold"]
    assert hold["gross_return_pct"] == hold["net_return_pct"] == hold["return_pct"]
    assert hold["llm_cost_usd"] == 0.0
    assert report["agents"]["llm"]["across_runs"]["net_return_pct"]["std"] == 0.0


def test_trading(report: dict[str, Any]) -> None:
    llm = report["agents"]["llm"]
    for trading in (llm["trading"], llm["runs"][1]["trading"]):
        assert trading["closed_trades"] == 2
        assert trading["win_rate"] == 0.5  # +3 and -1
        assert trading["profit_factor"] == pytest.approx(3.0)  # 3 won over 1 lost
        assert trading["exposure"] == pytest.approx(0.6)  # margin used at 3 of 5 cycles
        # 452 traded over a mean equity of 101.2, in 4 five-minute cycles (1/72 of a day).
        assert trading["turnover_per_day"] == pytest.approx(452 / 101.2 / (4 / 288))
    assert report["agents"]["hold"]["trading"] == {
        "closed_trades": 0,
        "win_rate": None,
        "profit_factor": None,
        "exposure": 0.0,
        "turnover_per_day": 0.0,
    }


def test_calibration(report: dict[str, Any]) -> None:
    # p1 at 0.82 won, p2 at 0.35 lost; the rejected action and the open p3 are unscored.
    run = report["agents"]["llm"]["runs"][0]["calibration"]
    assert run["decisions"] == 2
    assert run["brier"] == pytest.approx(((1 - 0.82) ** 2 + 0.35**2) / 2)
    assert run["bins"] == [
        {"lower": 0.3, "upper": 0.4, "count": 1, "mean_confidence": 0.35, "win_frequency": 0.0},
        {"lower": 0.8, "upper": 0.9, "count": 1, "mean_confidence": 0.82, "win_frequency": 1.0},
    ]
    pooled = report["agents"]["llm"]["calibration"]
    assert pooled["decisions"] == 4
    assert pooled["brier"] == pytest.approx(run["brier"])
    assert [b["count"] for b in pooled["bins"]] == [2, 2]
    assert report["agents"]["hold"]["calibration"] == {"brier": None, "decisions": 0, "bins": []}


def test_reliability(report: dict[str, Any]) -> None:
    run = report["agents"]["llm"]["runs"][0]["reliability"]
    assert run["decisions"] == 5
    # One each of five decisions: a parse failure, a timeout, a cycle missed (c6), one
    # rejected action (with two reasons).
    assert run["per_100"] == {
        "parse_failures": 20.0,
        "provider_errors": 0.0,
        "disabled": 0.0,
        "portfolio_unavailable": 0.0,
        "strategy_errors": 0.0,
        "timeouts": 20.0,
        "other_errors": 0.0,
        "missed": 20.0,
        "rejections": 20.0,
    }
    assert run["rejections_by_reason"] == {"insufficient_margin": 1, "max_leverage": 1}
    pooled = report["agents"]["llm"]["reliability"]
    assert pooled["decisions"] == 10
    assert pooled["per_100"] == run["per_100"]
    assert pooled["rejections_by_reason"] == {"insufficient_margin": 2, "max_leverage": 2}
    assert report["agents"]["hold"]["reliability"]["per_100"]["missed"] == 0.0


def test_llm_usage(report: dict[str, Any]) -> None:
    expected = {
        "calls": 4,
        "prompt_tokens": 60,
        "completion_tokens": 15,
        "latency_ms_p50": 250.0,  # of 100, 200, 300, 400, interpolated
        "latency_ms_p95": 385.0,
        "cost_usd": 2.0,
        "cost_per_decision_usd": 0.4,  # 2.0 over 5 decisions
        "cost_per_return_point_usd": 0.5,  # 2.0 over a return of 4 %
    }
    assert report["agents"]["llm"]["runs"][0]["llm"] == pytest.approx(expected)
    # Pooled: means per run, percentiles of both runs' calls (each time twice: the 95th
    # percentile of 100, 100, ..., 400, 400 is 400).
    assert report["agents"]["llm"]["llm"] == pytest.approx({**expected, "latency_ms_p95": 400.0})
    assert report["agents"]["hold"]["llm"] == {
        "calls": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "latency_ms_p50": None,
        "latency_ms_p95": None,
        "cost_usd": 0.0,
        "cost_per_decision_usd": 0.0,
        "cost_per_return_point_usd": None,
    }


def test_a_model_bill_above_the_equity_loses_everything(tmp_path: Path) -> None:
    _run(tmp_path / "run-0")
    calls = (tmp_path / "run-0" / "llm_api_calls.csv").read_text()
    (tmp_path / "run-0" / "llm_api_calls.csv").write_text(
        calls + "llm,c2,100,10,5,500\n"  # 500 USD in c2, charged from c3 on
    )
    llm = _report(tmp_path)["agents"]["llm"]
    assert llm["net_return_pct"]["value"] == pytest.approx(-100.0)
    assert llm["llm_cost_usd"] == pytest.approx(502.0)


def test_decision_errors_and_postgres_arrays() -> None:
    assert error_kind("") is None
    assert error_kind("parse error: bad JSON") == "parse_failures"
    assert error_kind("provider error: the decision deadline came before an answer") == ("timeouts")
    assert error_kind("provider error: HTTP 529 overloaded") == "provider_errors"
    assert error_kind("disabled: ANTHROPIC_API_KEY is not set") == "disabled"
    assert error_kind("portfolio unavailable: no reply") == "portfolio_unavailable"
    assert error_kind("strategy failed: ValueError: x") == "strategy_errors"
    assert error_kind("something else") == "other_errors"
    assert pg_array("{}") == []
    assert pg_array("") == []
    assert pg_array('{a,"b c",d}') == ["a", "b c", "d"]


def test_a_decision_longer_than_the_csv_modules_limit_is_read(tmp_path: Path) -> None:
    # The row keeps the whole decision: a long prompt is far above 128 KiB.
    _write(
        tmp_path / "decisions.csv",
        ["cycle_id", "llm_id", "actions", "results", "error", "decision"],
        [["c1", "llm", "[]", "[]", "", json.dumps({"prompt": "x" * 300_000})]],
    )
    assert read_activity(tmp_path)["llm"].decisions == 1
