"""``python -m devstack season``: isolated arenas replay the same data to the same result.

Two seasons of the same data, line-up and seed, each run a whole arena of its own (every
service a process, its own NATS and Postgres, free ports), the first two runs side by side:
the same seed gives the same chain head, trades and equities to the last digit; the next
seed changes the random baseline only, never the market nor the other baselines.
"""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bench.replay_data import write_month
from devstack.season.config import Season
from tests.e2e.processes import play_season

pytestmark = pytest.mark.e2e

LINEUP = Path(__file__).resolve().parent / "lineup.toml"
SYMBOLS = ("BTCUSDT", "ETHUSDT")
# Half-hour cycles over a day of one-minute bars: after the warm-up, a season of 30 cycles.
SETTINGS = {"ARENA_CYCLE_SECONDS": "1800", "ARENA_DECISION_SECONDS": "240"}


def _season(data: Path, out: Path, runs: int, *options: str) -> dict[str, Any]:
    return play_season(
        data,
        out,
        LINEUP,
        "--symbols", ",".join(SYMBOLS), "--runs", str(runs), "--seed", "7", *options,
        env=SETTINGS,
    )  # fmt: skip


def test_the_same_season_twice_gives_the_same_books(
    tmp_path: Path, postgres_admin_url: str
) -> None:
    data = tmp_path / "data"
    write_month(data, days=1, symbols=SYMBOLS)
    first = _season(data, tmp_path / "first", 2, "--parallel", "2")
    # Run 0 alone, as a Kubernetes Job's pod plays it, on a Postgres server of its own.
    try:
        again = _season(
            data, tmp_path / "again", 2, "--only-run", "0", "--database-server", postgres_admin_url
        )
    finally:
        made = Season(data=data, out=tmp_path / "again", lineup=LINEUP, runs=2).database_of(0)
        asyncio.run(_drop(postgres_admin_url, made))

    run0, run1 = first["runs"]
    (repeat,) = again["runs"]
    assert (run0["seed"], run1["seed"], repeat["seed"]) == (7, 8, 7)
    assert run0["verify"] == run1["verify"] == repeat["verify"] == "ok"
    assert run0["cycles"] == repeat["cycles"] == run1["cycles"] >= 25
    # The same seed: the same chain (every decision and result) and the same figures.
    assert repeat["chain_head"] == run0["chain_head"]
    assert repeat["agents"] == run0["agents"]
    # Another seed: the random baseline decides otherwise; the market and the others do not.
    assert run1["agents"]["random"] != run0["agents"]["random"]
    for agent in ("momentum", "mean-reversion"):
        assert run1["agents"][agent] == run0["agents"][agent]
    assert set(run0["agents"]["momentum"]) >= {
        "final_equity", "return_pct", "net_return_pct", "fees", "funding", "llm_cost_usd",
        "trades", "parse_failures", "rejections",
    }  # fmt: skip
    assert first["season"]["lineup"][0] == {
        "id": "momentum",
        "provider": "baseline",
        "model": "ema-cross",
    }
    exported = tmp_path / "first" / "run-0"
    # The trades as exported, row for row (their own ids are Postgres's).
    assert _without_ids(exported / "trades.csv") == _without_ids(
        tmp_path / "again" / "run-0" / "trades.csv"
    )
    # Each cycle's prices, the report's benchmark: a row per symbol and cycle, the same in
    # every run of the season.
    prices = (exported / "market_data.csv").read_text()
    assert prices == (tmp_path / "first" / "run-1" / "market_data.csv").read_text()
    assert len(prices.splitlines()) == 1 + len(SYMBOLS) * run0["cycles"]
    decisions = (exported / "llm_decisions.log").read_text().splitlines()
    # The season played whole ends with its report; a single run of it (a Job's pod) not.
    report = json.loads((tmp_path / "first" / "report.json").read_text())
    assert report["runs"] == 2
    assert set(report["agents"]) == set(run0["agents"])
    assert sum(report["agents"]["momentum"]["rank_frequencies"]) == 2
    assert (tmp_path / "first" / "report.html").exists()
    assert (tmp_path / "first" / "charts" / "equity.png").exists()
    # What the report reads from the rows agrees with the ledger's own figures.
    for agent, figures in run0["agents"].items():
        row = report["agents"][agent]["runs"][0]
        reliability = row["reliability"]
        assert reliability["decisions"] >= run0["cycles"]  # one per cycle, a late one too
        rejected = reliability["per_100"]["rejections"] * reliability["decisions"] / 100
        assert rejected == pytest.approx(figures["rejections"])
        assert row["llm_cost_usd"] == float(figures["llm_cost_usd"]) == 0.0
        assert row["trading"]["closed_trades"] <= figures["trades"]
    assert not (tmp_path / "again" / "report.json").exists()
    assert len(decisions) == 3 * run0["cycles"]


def _without_ids(path: Path) -> list[dict[str, str]]:
    with path.open() as rows:
        return sorted(
            ({k: v for k, v in row.items() if k != "id"} for row in csv.DictReader(rows)),
            key=lambda row: (row["executed_at"], row["llm_id"], row["symbol"], row["action"]),
        )


async def _drop(server_url: str, name: str) -> None:
    """The season's database this test made on the shared server."""
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
