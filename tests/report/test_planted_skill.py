"""A season whose one agent knows the next bar: the report must find its skill, and must
not find any in the seeded random baseline nor in buying BTC and holding it.

The agent with a planted skill is a model like any other to the arena (provider
``openai``, reached through the real SDK), served by a local server speaking the Chat
Completions wire format. The server reads the cycle's time and the open positions from
the prompt and, knowing the replayed history, trades each symbol in the direction of its
price at the next cycle. Buy-and-hold may put its whole equity on BTC at 1x here, so its
beta is about 1 and its alpha only its opening fee.
"""

from __future__ import annotations

import csv
import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bench.replay_data import write_month
from tests.e2e.processes import play_season
from tests.fakes.openai import FakeOpenAI, completion
from tests.fakes.scripted_http import Recorded, Reply

pytestmark = pytest.mark.e2e

LINEUP = Path(__file__).resolve().parent / "planted_lineup.toml"
SYMBOLS = ("BTCUSDT", "ETHUSDT")
CYCLE = timedelta(minutes=30)
SETTINGS = {
    "ARENA_CYCLE_SECONDS": str(int(CYCLE.total_seconds())),
    "ARENA_DECISION_SECONDS": "240",
    "ARENA_MAX_MARGIN_USD": "100",
    "ARENA_MAX_MARGIN_UTILISATION": "1",
    "ARENA_TEST_ORACLE_KEY": "sk-oracle",
}
CYCLE_LINE = re.compile(r"^Cycle \S+, market at (\S+)\.$", re.MULTILINE)
POSITION_LINE = re.compile(r"^- (\w+) (LONG|SHORT) ", re.MULTILINE)


def _closes(data: Path) -> dict[str, dict[datetime, Decimal]]:
    """Each symbol's last price at every minute: the close of the bar that ended then."""
    found: dict[str, dict[datetime, Decimal]] = {}
    for path in data.glob("*-1m-*.csv"):
        symbol = path.name.split("-", 1)[0]
        with path.open(newline="") as rows:
            found[symbol] = {
                datetime.fromtimestamp(int(row["open_time"]) / 1000, UTC)
                + timedelta(minutes=1): Decimal(row["close"])
                for row in csv.DictReader(rows)
            }
    return found


class Oracle:
    """Answers a trading prompt knowing where each price is one cycle later."""

    def __init__(self, closes: dict[str, dict[datetime, Decimal]]) -> None:
        self._closes = closes
        self.answered = 0

    def __call__(self, request: Recorded) -> dict[str, Any]:
        prompt = request.body["messages"][-1]["content"]
        cycle = CYCLE_LINE.search(prompt)
        assert cycle is not None, prompt
        now = datetime.fromisoformat(cycle.group(1))
        held = dict(POSITION_LINE.findall(prompt))
        actions: list[dict[str, Any]] = []
        for symbol in SYMBOLS:
            path = self._closes[symbol]
            if now + CYCLE not in path:
                continue
            up = path[now + CYCLE] > path[now]
            side = "LONG" if up else "SHORT"
            if symbol in held:
                if held[symbol] != side:
                    actions.append({"action": "CLOSE", "symbol": symbol})
                continue
            actions.append(
                {
                    "action": "BUY" if up else "SELL",
                    "symbol": symbol,
                    "margin_usd": 30,
                    "leverage": 5,
                    "confidence": 0.9,
                }
            )
        self.answered += 1
        answer = {"reasoning": "the next bar", "actions": actions or [{"action": "HOLD"}]}
        body: dict[str, Any] = completion(json.dumps(answer)).body
        return body


def test_a_planted_skill_is_found_and_luck_and_the_market_are_not(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_month(data, days=1, symbols=SYMBOLS)
    oracle = Oracle(_closes(data))
    server = FakeOpenAI(Reply(200, oracle)).start()
    lineup = tmp_path / "agents.toml"
    lineup.write_text(LINEUP.read_text().replace("{base_url}", server.base_url))
    out = tmp_path / "season"
    try:
        summary = play_season(
            data,
            out,
            lineup,
            "--symbols", ",".join(SYMBOLS), "--runs", "1", "--seed", "11",
            env=SETTINGS,
        )  # fmt: skip
    finally:
        server.stop()
    (run,) = summary["runs"]
    assert run["verify"] == "ok"
    assert oracle.answered == run["cycles"] >= 25

    report = json.loads((out / "report.json").read_text())
    agents = report["agents"]
    skilled, random, holder = agents["oracle"], agents["random"], agents["buy-and-hold"]
    # Annualised at the cycles' own spacing: half-hour cycles.
    assert report["method"]["cycles_per_year"] == 365 * 48
    per_cycle = report["method"]["cycles_per_year"]  # alpha is annualised: per cycle here
    assert skilled["rank_frequencies"][0] == 1
    assert skilled["alpha"]["lower"] > 0, skilled["alpha"]
    assert skilled["alpha"]["value"] / per_cycle > 0.5  # percent per cycle
    assert skilled["return_pct"]["lower"] > 0, skilled["return_pct"]
    # Luck: the random baseline's alpha could be anything, zero included.
    assert random["alpha"]["lower"] < 0 < random["alpha"]["upper"], random["alpha"]
    # The market: holding BTC with the whole equity is beta 1, and its alpha is only the
    # opening fee spread over the cycles (under a hundredth of a percent per cycle).
    assert holder["beta"] == pytest.approx(1.0, abs=0.05)
    assert abs(holder["alpha"]["value"]) / per_cycle < 0.01, holder["alpha"]
    assert report["pairwise"]["oracle"]["random"] > 0.95
    assert report["pairwise"]["oracle"]["buy-and-hold"] > 0.95
