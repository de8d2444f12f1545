"""The ledger's list, equity, stats and verify queries over NATS, after two real cycles;
SPEC's SQL views ``llm_leaderboard`` and ``llm_trading_stats`` agree with them, figure for
figure, after a history of wins, losses, fees, funding, model costs and open positions."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from services.common import channels, subjects
from services.common.bus import RemoteError
from services.common.contracts import (
    PARSE_ERROR_PREFIX,
    Accounts,
    AccountsQuery,
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
from tests.builders import approved, buy, close, hold, llm_call, sell, tick, verdict
from tests.ledger.harness import Ledger
from tests.ledger.test_service import BTC, ETH, _two_cycles
from tests.support import eventually


async def test_list_equity_stats_and_verify_queries(lg: Ledger) -> None:
    await _two_cycles(lg)
    await lg.db.execute(
        "UPDATE decisions SET error = $1 WHERE decision_id = 'c2:random'",
        f"{PARSE_ERROR_PREFIX}no JSON object found",
    )
    request = lg.bus.request

    open_btc = await request(
        channels.LEDGER_QUERY_POSITIONS.subject, PositionsQuery(agent_id="momentum"), Positions
    )
    assert [(p.symbol, p.status.value) for p in open_btc.positions] == [("ETHUSDT", "OPEN")]
    everything = await request(
        channels.LEDGER_QUERY_POSITIONS.subject, PositionsQuery(status="all"), Positions
    )
    assert everything.total == 3
    closed = await request(
        channels.LEDGER_QUERY_POSITIONS.subject, PositionsQuery(status="closed"), Positions
    )
    assert [p.agent_id for p in closed.positions] == ["momentum"]

    trades = await request(
        channels.LEDGER_QUERY_TRADES.subject,
        TradesQuery(agent_id="momentum", page=Page(limit=2)),
        Trades,
    )
    assert trades.total == 3
    assert len(trades.trades) == 2
    assert trades.trades[0].exit_reason == "decision"
    assert trades.trades[0].realized_pnl == Decimal("0.31")

    decisions = await request(
        channels.LEDGER_QUERY_DECISIONS.subject, DecisionsQuery(agent_id="random"), Decisions
    )
    assert decisions.total == 2
    latest, first = decisions.decisions
    assert latest.decision.decision_id == "c2:random"
    assert first.decision.reasoning == "because"
    assert [r.approved for r in first.results] == [True, False]
    assert [r.code for r in first.results[1].reasons] == ["margin_too_high", "x"]
    assert first.results[1].reasons[0].message == "margin 40 > 30"

    series = await request(
        channels.LEDGER_QUERY_EQUITY.subject, EquityQuery(agent_id="momentum"), EquitySeries
    )
    assert [p.equity for p in series.points][-1] == Decimal("101.590445")
    # One per cycle snapshot and one after each of its decisions.
    assert len(series.points) == 4

    board = await request(
        channels.LEDGER_QUERY_LEADERBOARD.subject, LeaderboardQuery(), Leaderboard
    )
    random = next(e for e in board.entries if e.agent_id == "random")
    assert (random.rejections, random.parse_failures) == (1, 1)
    assert random.net_return_pct == random.return_pct  # no LLM cost recorded

    stats = await request(channels.LEDGER_QUERY_STATS.subject, StatsQuery(), Stats)
    by_agent = {s.agent_id: s for s in stats.agents}
    momentum = by_agent["momentum"]
    assert momentum.average_win == Decimal("0.31")
    assert momentum.average_loss is None
    # From 100 to 99.965325 after c1's two opening fees.
    assert momentum.max_drawdown_pct == Decimal("0.0347")
    assert by_agent["random"].rejections_by_reason == {"margin_too_high": 1, "x": 1}
    assert by_agent["random"].parse_failures == 1

    # The edit above changed a chained row's content: verify names it.
    report = await request(channels.LEDGER_QUERY_VERIFY.subject, VerifyQuery(), VerifyReport)
    assert report.checked_accounts == await lg.count("SELECT count(*) FROM llm_accounts")
    assert report.checked_decisions == 4
    assert not report.ok
    assert report.problems == ("decision c2:random: hash does not match its content (altered row)",)

    with pytest.raises(RemoteError) as missing:
        await request(channels.LEDGER_QUERY_TRADES.subject, TradesQuery(agent_id="nobody"), Trades)
    assert missing.value.reply.code == "not_found"

    # A row stored before the whole decision was kept is read back from its columns.
    await lg.db.execute("UPDATE decisions SET decision = NULL WHERE decision_id = 'c1:random'")
    older = await request(
        channels.LEDGER_QUERY_DECISIONS.subject, DecisionsQuery(agent_id="random"), Decisions
    )
    deadline = {"decision_deadline": first.decision.decided_at}
    assert older.decisions[1].decision == first.decision.model_copy(update=deadline)
    assert older.decisions[1].results == first.results


# --- the views ----------------------------------------------------------------------

AGENTS = ("momentum", "mean-reversion", "random")


async def _cycle(lg: Ledger, n: int, btc: int, eth: int, *actions: Any) -> None:
    """Cycle ``c<n>`` at these prices, each agent's approved actions, until it completes."""
    cycle_id = f"c{n}"
    now = lg.clock.now()
    await lg.start_cycle(cycle_id, n, {BTC: Decimal(btc), ETH: Decimal(eth)}, *AGENTS)
    for agent, agent_actions in zip(AGENTS, actions, strict=True):
        results = [approved(a) for a in agent_actions]
        await lg.send_verdict(verdict(cycle_id, agent, now, *results))
    await eventually(lambda: len(lg.completed) == n, what=f"{cycle_id} completed")
    lg.clock.advance(300)


async def _history(lg: Ledger) -> None:
    """Opens at 00:00 (a funding time, paid on the first tick), two wins, two losses, model
    costs for two agents; momentum's ETH short and mean-reversion's BTC long stay open."""
    # (momentum, mean-reversion, random)
    await _cycle(
        lg,
        1,
        95000,
        3000,
        (buy(BTC, 10, 3), sell(ETH, 20, 2)),
        (buy(ETH, 10, 5),),
        (buy(BTC, 30, 10),),
    )
    await lg.publish(subjects.MARKET_TICK, tick("t1", lg.clock.now(), {BTC: Decimal(97000)}), "t1")
    await eventually(lambda: lg.count("SELECT count(*) FROM funding_payments"), what="funding paid")
    await _cycle(lg, 2, 96000, 2900, (close(BTC),), (close(ETH),), (hold(),))
    await _cycle(lg, 3, 94000, 2950, (buy(BTC, 10, 3),), (buy(BTC, 15, 4),), (close(BTC),))
    await _cycle(lg, 4, 97000, 2950, (close(BTC),), (hold(),), (hold(),))
    for n, (agent, cost) in enumerate((("momentum", "0.0123"), ("random", "0.5"))):
        call_id = f"k{n}"
        call = llm_call(agent, call_id, lg.clock.now(), estimated_cost=cost)
        await lg.publish(subjects.llm_call(agent), call, call_id)

    async def costs_stored() -> bool:
        return await lg.count("SELECT count(*) FROM llm_api_calls") == 2

    await eventually(costs_stored, what="both model costs stored")


async def _leaderboards_agree(lg: Ledger) -> Leaderboard:
    """Every row of ``llm_leaderboard`` shows what the leaderboard and accounts answer."""
    request = lg.bus.request
    board = await request(
        channels.LEDGER_QUERY_LEADERBOARD.subject, LeaderboardQuery(), Leaderboard
    )
    accounts = await request(channels.LEDGER_QUERY_ACCOUNTS.subject, AccountsQuery(), Accounts)
    account = {a.agent_id: a for a in accounts.accounts}
    view = await lg.db.fetch("SELECT * FROM llm_leaderboard")
    assert [(r["rank"], r["llm_id"]) for r in view] == [(e.rank, e.agent_id) for e in board.entries]
    for row, e in zip(view, board.entries, strict=True):
        a = account[e.agent_id]
        shown = {
            "display_name": e.display_name,
            "provider": a.provider,
            "model_name": a.model_name,
            "balance": a.balance,
            "margin_used": a.margin_used,
            "equity": e.equity,
            "total_pnl": a.total_pnl,
            "realized_pnl": e.realized_pnl,
            "unrealized_pnl": e.unrealized_pnl,
            "total_fees": e.total_fees,
            "total_funding": e.total_funding,
            "roi_pct": e.return_pct,
            "total_trades": e.total_trades,
            "winning_trades": a.winning_trades,
            "losing_trades": a.losing_trades,
            "win_rate": e.win_rate,
            "open_positions": e.open_positions,
            "is_active": a.is_active,
        }
        assert {k: row[k] for k in shown} == shown, e.agent_id
    return board


async def _stats_agree(lg: Ledger, board: Leaderboard) -> Stats:
    """Every row of ``llm_trading_stats`` shows what stats, positions and trades answer."""
    request = lg.bus.request
    stats = await request(channels.LEDGER_QUERY_STATS.subject, StatsQuery(), Stats)
    positions = await request(channels.LEDGER_QUERY_POSITIONS.subject, PositionsQuery(), Positions)
    trades = await request(channels.LEDGER_QUERY_TRADES.subject, TradesQuery(), Trades)
    entry = {e.agent_id: e for e in board.entries}
    view = await lg.db.fetch("SELECT * FROM llm_trading_stats")
    assert sorted(r["llm_id"] for r in view) == sorted(s.agent_id for s in stats.agents)
    stat = {s.agent_id: s for s in stats.agents}
    for row in view:
        agent = row["llm_id"]
        s = stat[agent]
        mine = [p for p in positions.positions if p.agent_id == agent]
        pnls = [t.realized_pnl for t in trades.trades if t.agent_id == agent]
        closed = [pnl for pnl in pnls if pnl is not None]
        # Each mean is of one or two trades, so Postgres' avg() is as exact as the query's.
        shown = {
            "display_name": s.display_name,
            "closed_trades": s.winning_trades + s.losing_trades,
            "winning_trades": s.winning_trades,
            "losing_trades": s.losing_trades,
            "average_win": s.average_win,
            "average_loss": s.average_loss,
            "best_trade": max(closed, default=None),
            "worst_trade": min(closed, default=None),
            "total_fees": s.total_fees,
            "total_funding": s.total_funding,
            "open_positions": entry[agent].open_positions,
            "market_exposure": sum((p.current_price * p.quantity for p in mine), Decimal(0)),
            "margin_in_use": sum((p.margin for p in mine), Decimal(0)),
            "llm_cost_usd": s.llm_cost_usd,
        }
        assert {k: row[k] for k in shown} == shown, agent
    return stats


async def test_the_views_show_the_figures_the_queries_answer(lg: Ledger) -> None:
    # Before any trade every agent is level: one rank each all the same, by agent id.
    board = await _leaderboards_agree(lg)
    assert [e.agent_id for e in board.entries] == sorted(AGENTS)
    await _stats_agree(lg, board)

    await _history(lg)
    board = await _leaderboards_agree(lg)
    stats = await _stats_agree(lg, board)
    # The history has what each figure is about.
    assert all(s.winning_trades + s.losing_trades > 0 for s in stats.agents)
    assert sum(s.winning_trades for s in stats.agents) == 2
    assert sum(s.losing_trades for s in stats.agents) == 2
    assert all(s.total_funding != 0 for s in stats.agents if s.agent_id != "mean-reversion")
    assert all(s.llm_cost_usd != 0 for s in stats.agents if s.agent_id != "mean-reversion")
    assert {e.agent_id for e in board.entries if e.open_positions} == {
        "momentum",
        "mean-reversion",
    }

    # Rows at the edges (written here, not by trading): level on equity, the larger total
    # PnL ranks first, whatever the agent ids say; percentages on a tie of their fifth
    # decimal round half to even: 1 win in 128 is 0.78125 % -> 0.7812, a return of
    # 0.00125 % -> 0.0012.
    level = (
        "UPDATE llm_accounts SET balance = initial_balance * 1.0000125 - $2, margin_used = $2, "
        "unrealized_pnl = 0, total_pnl = initial_balance * 0.0000125 + $3, "
        "winning_trades = 1, losing_trades = 127 WHERE llm_id = $1"
    )
    await lg.db.execute(level, "random", Decimal(3), Decimal(1))
    await lg.db.execute(level, "momentum", Decimal(0), Decimal(0))
    board = await _leaderboards_agree(lg)
    ids = [e.agent_id for e in board.entries]
    random, momentum = board.entries[ids.index("random")], board.entries[ids.index("momentum")]
    assert random.equity == momentum.equity
    assert random.rank + 1 == momentum.rank
    assert (random.win_rate, random.return_pct) == (Decimal("0.7812"), Decimal("0.0012"))
