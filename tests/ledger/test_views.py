"""SPEC's SQL views ``llm_leaderboard`` and ``llm_trading_stats`` agree, figure for figure,
with what the ledger's queries answer, after a history of wins, losses, fees, funding,
model costs and positions left open, all through the ledger's own code paths."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from services.common import subjects
from services.common.contracts import (
    Accounts,
    AccountsQuery,
    Leaderboard,
    LeaderboardQuery,
    Positions,
    PositionsQuery,
    Stats,
    StatsQuery,
    Trades,
    TradesQuery,
)
from tests.builders import approved, buy, close, hold, sell, tick, verdict
from tests.ledger.harness import Ledger, llm_call
from tests.support import eventually

BTC, ETH = "BTCUSDT", "ETHUSDT"
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
    board = await request(subjects.LEDGER_QUERY_LEADERBOARD, LeaderboardQuery(), Leaderboard)
    accounts = await request(subjects.LEDGER_QUERY_ACCOUNTS, AccountsQuery(), Accounts)
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
    stats = await request(subjects.LEDGER_QUERY_STATS, StatsQuery(), Stats)
    positions = await request(subjects.LEDGER_QUERY_POSITIONS, PositionsQuery(), Positions)
    trades = await request(subjects.LEDGER_QUERY_TRADES, TradesQuery(), Trades)
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
