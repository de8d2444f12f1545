"""Reads bounded by what they return, on real Postgres: the equity series cut to ``points``
per agent, and statistics from hourly buckets equal to the full computation over every
snapshot, however the snapshots arrive (late ones too) and after retention thins them."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from uuid import uuid4

import asyncpg

from services.common.contracts import EquityQuery, StatsQuery
from services.common.settings import Settings
from services.ledger import stats
from services.ledger.queries import LedgerQueries
from services.ledger.retention import RetentionPolicy
from services.ledger.series import spans
from tests.ledger.test_retention import T, books

MINUTE = timedelta(minutes=1)


async def _snapshots(db: asyncpg.Connection, rows: list[tuple[str, datetime, Decimal]]) -> None:
    await db.executemany(
        "INSERT INTO equity_snapshots (llm_id, at, source, equity, balance, margin_used, "
        "unrealized_pnl, total_fees, total_funding) VALUES ($1, $2, $4, $3, $3, 0, 0, 0, 0)",
        [(agent, at, equity, f"tick:{uuid4().hex}") for agent, at, equity in rows],
    )


def test_spans_cover_the_window_end_to_end() -> None:
    lo, hi = T, T + timedelta(days=30, microseconds=7)
    starts, ends = spans(lo, hi, 1000)
    assert len(starts) == len(ends) == 1000
    assert starts[0] < lo and ends[-1] == hi
    assert all(a == b for a, b in zip(ends, starts[1:], strict=False))
    assert all(s < e for s, e in zip(starts, ends, strict=True))


async def test_equity_is_cut_to_points_per_agent_and_short_histories_come_whole(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    async with books(make_settings, database_url) as b:
        rng = random.Random(5)
        long = [("momentum", T + n * MINUTE, Decimal(rng.randint(90, 110))) for n in range(3000)]
        short = [("random", T + n * 7 * MINUTE, Decimal(100 + n)) for n in range(12)]
        await _snapshots(b.db, long + short)
        queries = LedgerQueries(b.pool)

        answer = await queries.equity(EquityQuery(points=100, limit=20000))
        by_agent: dict[str, list[datetime]] = {}
        for p in answer.points:
            by_agent.setdefault(p.agent_id, []).append(p.at)
        assert by_agent["random"] == [at for _, at, _ in short]  # all 12, unthinned
        momentum = by_agent["momentum"]
        assert len(momentum) == 100  # one per span: a snapshot every minute fills each
        assert momentum[-1] == long[-1][1]  # the newest is always there
        # Each is the last snapshot of its span: the span of 3000 minutes in 100 parts.
        starts, ends = spans(T, long[-1][1], 100)
        spanned = zip(starts, ends, strict=True)
        expected = [max(at for _, at, _ in long if s < at <= e) for s, e in spanned]
        assert momentum == expected
        assert [p.at for p in answer.points] == sorted(p.at for p in answer.points)

        # limit keeps the newest points; since cuts the window; one agent alone.
        newest = await queries.equity(EquityQuery(points=100, limit=30))
        assert newest.points == answer.points[-30:]
        since = T + 2990 * MINUTE
        recent = await queries.equity(EquityQuery(agent_id="momentum", since=since))
        assert [p.at for p in recent.points] == [at for _, at, _ in long if at >= since]
        assert {p.agent_id for p in recent.points} == {"momentum"}


async def _full_figures(db: asyncpg.Connection, agent: str) -> tuple[Decimal, Decimal | None]:
    curve = [Decimal(100)] + [
        r["equity"]
        for r in await db.fetch(
            "SELECT equity FROM equity_snapshots WHERE llm_id = $1 ORDER BY at, id", agent
        )
    ]
    return stats.max_drawdown_pct(curve), stats.sharpe_ratio(curve)


async def _stat_figures(queries: LedgerQueries) -> dict[str, tuple[Decimal, Decimal | None]]:
    answer = await queries.stats(StatsQuery())
    return {a.agent_id: (a.max_drawdown_pct, a.sharpe_ratio) for a in answer.agents}


async def test_stats_from_buckets_equal_the_full_computation_through_late_rows_and_thinning(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    async with books(make_settings, database_url) as b:
        rng = random.Random(17)
        agents = ("momentum", "random")

        def walk(start: datetime, minutes: int, step: int) -> list[tuple[str, datetime, Decimal]]:
            rows = []
            for agent in agents:
                equity = Decimal(100)
                for n in range(0, minutes, step):
                    equity = max(Decimal(0), equity + Decimal(rng.randint(-200, 205)) / 100)
                    rows.append((agent, start + n * MINUTE, equity))
            return rows

        # Ten days, a snapshot every 10 minutes, inserted in random order (late rows).
        history = walk(T - timedelta(days=10), 10 * 24 * 60, 10)
        rng.shuffle(history)
        await _snapshots(b.db, history[: len(history) // 2])
        queries = LedgerQueries(b.pool)
        first = await _stat_figures(queries)
        for agent in agents:
            assert first[agent] == await _full_figures(b.db, agent)

        # The rest lands in buckets already summed: they are summed again.
        await _snapshots(b.db, history[len(history) // 2 :])
        again = await _stat_figures(queries)
        for agent in agents:
            assert again[agent] == await _full_figures(b.db, agent)
            assert again[agent] != first[agent]

        # Retention thins the old part: the figures follow the rows that are left.
        await b.db.execute(
            "INSERT INTO symbol_marks (symbol, marked_at, mark_price) VALUES ('BTCUSDT', $1, 1)",
            T,
        )
        policy = RetentionPolicy(equity_full=timedelta(days=3))
        assert (await b.retention(policy).prune_once())["equity_snapshots"] > 0
        thinned = await _stat_figures(queries)
        for agent in agents:
            assert thinned[agent] == await _full_figures(b.db, agent)
            assert thinned[agent][0] == again[agent][0]  # thinning keeps the drawdown


async def test_average_win_and_loss_are_the_closed_trades_means(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    async with books(make_settings, database_url) as b:
        rng = random.Random(23)
        pnls = [Decimal(rng.randint(-5000, 5000)) / 1000 for _ in range(40)]
        position = await b.db.fetchval(
            "INSERT INTO positions (llm_id, symbol, side, entry_price, current_price, quantity, "
            "leverage, margin, status, opened_at, entry_fee) "
            "VALUES ('momentum', 'BTCUSDT', 'LONG', 1, 1, 1, 1, 1, 'CLOSED', $1, 0) RETURNING id",
            T,
        )
        await b.db.executemany(
            "INSERT INTO trades (llm_id, position_id, symbol, action, side, entry_price, "
            "exit_price, quantity, realized_pnl, fees, executed_at) "
            "VALUES ('momentum', $1, 'BTCUSDT', 'SELL', 'LONG', 1, $3, 1, $2, 0, $4)",
            [(position, p, None if n == 0 else Decimal(1), T) for n, p in enumerate(pnls)],
        )
        closes = pnls[1:]  # the first has no exit price: an opening, not counted
        answer = await LedgerQueries(b.pool).stats(StatsQuery())
        momentum = next(a for a in answer.agents if a.agent_id == "momentum")
        assert momentum.average_win == stats.average([p for p in closes if p > 0])
        assert momentum.average_loss == stats.average([p for p in closes if p <= 0])
