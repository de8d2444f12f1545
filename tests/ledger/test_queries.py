"""The ledger's list, equity, stats and verify queries over NATS, after two real cycles."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.common import subjects
from services.common.bus import RemoteError
from services.common.contracts import (
    PARSE_ERROR_PREFIX,
    Decisions,
    DecisionsQuery,
    EquityQuery,
    EquitySeries,
    Leaderboard,
    LeaderboardQuery,
    Page,
    Positions,
    PositionsQuery,
    Stats,
    StatsQuery,
    Trades,
    TradesQuery,
    VerifyQuery,
    VerifyReport,
)
from tests.ledger.harness import Ledger
from tests.ledger.test_service import _two_cycles


async def test_list_equity_stats_and_verify_queries(lg: Ledger) -> None:
    await _two_cycles(lg)
    await lg.db.execute(
        "UPDATE decisions SET error = $1 WHERE decision_id = 'c2:random'",
        f"{PARSE_ERROR_PREFIX}no JSON object found",
    )
    request = lg.bus.request

    open_btc = await request(
        subjects.LEDGER_QUERY_POSITIONS, PositionsQuery(agent_id="momentum"), Positions
    )
    assert [(p.symbol, p.status.value) for p in open_btc.positions] == [("ETHUSDT", "OPEN")]
    everything = await request(
        subjects.LEDGER_QUERY_POSITIONS, PositionsQuery(status="all"), Positions
    )
    assert everything.total == 3
    closed = await request(
        subjects.LEDGER_QUERY_POSITIONS, PositionsQuery(status="closed"), Positions
    )
    assert [p.agent_id for p in closed.positions] == ["momentum"]

    trades = await request(
        subjects.LEDGER_QUERY_TRADES,
        TradesQuery(agent_id="momentum", page=Page(limit=2)),
        Trades,
    )
    assert trades.total == 3
    assert len(trades.trades) == 2
    assert trades.trades[0].exit_reason == "decision"
    assert trades.trades[0].realized_pnl == Decimal("0.31")

    decisions = await request(
        subjects.LEDGER_QUERY_DECISIONS, DecisionsQuery(agent_id="random"), Decisions
    )
    assert decisions.total == 2
    latest, first = decisions.decisions
    assert latest.decision.decision_id == "c2:random"
    assert first.decision.reasoning == "because"
    assert [r.approved for r in first.results] == [True, False]
    assert [r.code for r in first.results[1].reasons] == ["margin_too_high", "x"]
    assert first.results[1].reasons[0].message == "margin 40 > 30"

    series = await request(
        subjects.LEDGER_QUERY_EQUITY, EquityQuery(agent_id="momentum"), EquitySeries
    )
    assert [p.equity for p in series.points][-1] == Decimal("101.590445")
    # One per cycle snapshot and one after each of its decisions.
    assert len(series.points) == 4

    board = await request(subjects.LEDGER_QUERY_LEADERBOARD, LeaderboardQuery(), Leaderboard)
    random = next(e for e in board.entries if e.agent_id == "random")
    assert (random.rejections, random.parse_failures) == (1, 1)
    assert random.net_return_pct == random.return_pct  # no LLM cost recorded

    stats = await request(subjects.LEDGER_QUERY_STATS, StatsQuery(), Stats)
    by_agent = {s.agent_id: s for s in stats.agents}
    momentum = by_agent["momentum"]
    assert momentum.average_win == Decimal("0.31")
    assert momentum.average_loss is None
    # From 100 to 99.965325 after c1's two opening fees.
    assert momentum.max_drawdown_pct == Decimal("0.0347")
    assert by_agent["random"].rejections_by_reason == {"margin_too_high": 1, "x": 1}
    assert by_agent["random"].parse_failures == 1

    # The edit above changed a chained row's content: verify names it.
    report = await request(subjects.LEDGER_QUERY_VERIFY, VerifyQuery(), VerifyReport)
    assert report.checked_accounts == await lg.count("SELECT count(*) FROM llm_accounts")
    assert report.checked_decisions == 4
    assert not report.ok
    assert report.problems == ("decision c2:random: hash does not match its content (altered row)",)

    with pytest.raises(RemoteError) as missing:
        await request(subjects.LEDGER_QUERY_TRADES, TradesQuery(agent_id="nobody"), Trades)
    assert missing.value.reply.code == "not_found"
