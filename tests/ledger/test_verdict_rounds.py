"""Verdicts applied together book exactly what the same verdicts applied one by one do.

The books apply consecutive verdicts of different agents in rounds (their inputs read in
one statement, their decisions and books written once for the round); the books, the
chain, the events and what each verdict did must not depend on how they were batched:
not with an agent's second verdict in the batch, a copy of a decision (under
another agent's name too), an agent without
an account, nor a verdict arriving after its cycle completed within the batch.
"""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from services.common import subjects
from services.common.bus import PermanentError
from services.common.contracts import Verdict
from services.common.instruments import InstrumentTable
from services.common.settings import TradingLimits
from services.ledger.verdicts import Applied, VerdictApplier
from tests.builders import approved, buy, close, cycle_started, hold, rejected, sell, snapshot
from tests.builders import verdict as make_verdict
from tests.ledger.batching import BOOKS, together_and_one_by_one
from tests.ledger.harness import LONG_BTC, Ledger, open_positions
from tests.support import eventually

BTC, ETH = "BTCUSDT", "ETHUSDT"
FEE = Decimal("0.0004")

_STATE = {
    **BOOKS,
    "decisions": "SELECT decision_id, cycle_id, llm_id, results, applied_at, seq, prev_hash, "
    "hash, decision FROM decisions ORDER BY decision_id",
    "chain head": "SELECT * FROM decision_chain_head",
    "rejections": "SELECT llm_id, symbol, decision, rejection_reason, decision_id, cycle_id, "
    "reason_codes FROM rejected_decisions ORDER BY decision_id, symbol, rejection_reason",
    "cycles": "SELECT cycle_id, status, completed_at FROM cycles ORDER BY cycle_id",
}


@pytest.mark.parametrize("data_time", [False, True], ids=["live", "replay"])
async def test_verdicts_applied_together_book_what_they_do_one_by_one(
    lg: Ledger, database_url: str, data_time: bool
) -> None:
    await open_positions(lg, momentum=[LONG_BTC], random=[sell(ETH, 20, 10)])
    lg.clock.advance(300)
    now = lg.clock.now()
    prices = {BTC: Decimal(100500), ETH: Decimal(2990)}
    # Two cycles running: c2 expects all three agents, c3 two of them.
    for cycle_id, sequence, agents in (
        ("c2", 2, ("momentum", "random", "mean-reversion")),
        ("c3", 3, ("momentum", "random")),
    ):
        started = cycle_started(cycle_id, sequence, now, agents)
        await lg.publish(
            subjects.CYCLE_STARTED, started.model_copy(update={"data_time": data_time}), cycle_id
        )
        market = snapshot(cycle_id=cycle_id, at=now, prices=prices)
        await lg.publish(
            subjects.MARKET_SNAPSHOT, market.model_copy(update={"data_time": data_time}), cycle_id
        )
    stored = "SELECT count(DISTINCT cycle_id) = 2 FROM market_data WHERE cycle_id IN ('c2', 'c3')"
    await eventually(lambda: lg.count(stored), what="the snapshots stored")

    def verdict(
        agent: str, *results: Any, decision_id: str | None = None, cycle_id: str = "c2"
    ) -> Verdict:
        made = make_verdict(cycle_id, agent, now, *results)
        if decision_id is None:
            return made
        proposed = made.decision.model_copy(update={"decision_id": decision_id})
        return made.model_copy(update={"verdict_id": decision_id, "decision": proposed})

    copied = verdict("mean-reversion", approved(buy(BTC, 10, 5)), rejected(sell(ETH), ("x", "no")))
    verdicts = [
        verdict("momentum", approved(close(BTC)), approved(buy(ETH, 15, 3))),
        verdict("random", approved(hold()), cycle_id="c3"),  # the round spans two cycles
        copied,
        verdict("ghost", approved(hold())),
        # Another agent's verdict under the same decision id: that decision is stored.
        verdict("random", approved(hold()), decision_id=copied.decision.decision_id),
        copied,  # a copy of a decision in the same batch
        # More margin than the balance: refused by the ledger, the rest of it applied.
        verdict("random", approved(close(ETH)), approved(buy(BTC, 500, 2))),
        # The cycle completed with random's: too late, its trades refused.
        verdict("momentum", approved(sell(BTC, 10, 2)), decision_id="second-thought"),
        verdict("momentum", approved(buy(BTC, 10, 2)), cycle_id="c3"),  # completes c3
    ]
    applier = VerdictApplier(FEE, InstrumentTable(), TradingLimits(), frozenset({BTC, ETH}))

    async def apply(conn: asyncpg.Connection, batch: list[Verdict]) -> list[Applied | str]:
        applied = await applier.apply(conn, batch, lg.clock.now())
        return [str(a) if isinstance(a, PermanentError) else a for a in applied]

    (together, books_together), (one_by_one, books_one_by_one) = await together_and_one_by_one(
        database_url, verdicts, apply, _STATE
    )
    assert together == one_by_one
    assert books_together == books_one_by_one
    # And the verdicts did what they say.
    assert together[3] == "agent 'ghost' has no account in the ledger"
    applied = [o for o in together if isinstance(o, Applied)]
    assert [o.duplicate for o in applied] == [False, False, False, True, True, False, False, False]
    opened_closed = [(o.opened, o.closed) for o in applied]
    assert opened_closed == [(1, 1), (0, 0), (1, 0), (0, 0), (0, 0), (0, 1), (0, 0), (1, 0)]
    completed = [o.cycle_completed.cycle_id for o in applied if o.cycle_completed]
    assert completed == ["c2", "c3"]
    assert "ledger_insufficient_balance" in applied[5].rejection_codes
    assert applied[6].rejection_codes == ["ledger_cycle_closed"]
    assert [c["status"] for c in books_together["cycles"]] == ["completed"] * 3
    decisions = books_together["decisions"]
    assert len(decisions) == 8  # two of c1, four of c2, two of c3
    # Every decision is in the chain, each link after the one before.
    assert sorted(d["seq"] for d in decisions) == list(range(1, 9))
    by_seq = sorted(decisions, key=lambda d: d["seq"])
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(by_seq))
    events = [e["event_id"] for e in books_together["events"]]
    assert sum(e.startswith("account:") for e in events) == 6
    # A decision's position events come just before its account event.
    closed_btc = events.index("account:c2:momentum") - 2
    assert events[closed_btc].startswith("position:") and events[closed_btc].endswith(":closed")
