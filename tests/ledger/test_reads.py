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

from services.common.contracts import (
    EquityColumns,
    EquityPoint,
    EquityQuery,
    EquitySeries,
    StatsQuery,
)
from services.common.settings import Settings
from services.ledger import stats
from services.ledger.queries import LedgerQueries
from services.ledger.retention import RetentionPolicy
from services.ledger.series import equity_series, spans
from tests.ledger.test_retention import T, books

MINUTE = timedelta(minutes=1)
# An equity point's fields, each a column of the same name.
POINT_FIELDS = [f for f in EquityPoint.model_fields if f not in ("schema_version", "agent_id")]


async def _snapshots(db: asyncpg.Connection, rows: list[tuple[str, datetime, Decimal]]) -> None:
    await db.executemany(
        "INSERT INTO equity_snapshots (llm_id, at, source, equity, balance, margin_used, "
        "unrealized_pnl, total_fees, total_funding) VALUES ($1, $2, $4, $3, $3, 0, 0, 0, 0)",
        [(agent, at, equity, f"tick:{uuid4().hex}") for agent, at, equity in rows],
    )


async def _series(queries: LedgerQueries, query: EquityQuery) -> EquitySeries:
    return EquitySeries.model_validate_json(await queries.equity(query))


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

        answer = await _series(queries, EquityQuery(points=100, limit=20000))
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
        newest = await _series(queries, EquityQuery(points=100, limit=30))
        assert newest.points == answer.points[-30:]
        since = T + 2990 * MINUTE
        recent = await _series(queries, EquityQuery(agent_id="momentum", since=since))
        assert [p.at for p in recent.points] == [at for _, at, _ in long if at >= since]
        assert {p.agent_id for p in recent.points} == {"momentum"}


# Amounts whose str() is scientific or plain, zeros of every scale, negative, huge.
ODD_AMOUNTS = (
    "0", "0.00", "0.000000", "0.0000000", "0E-8", "1E-7", "-1.2E-7", "0.00000090", "0.000001",
    "-0.0000010", "0.0000009999", "12.5", "-12.50000000", "100", "101.590445",
    "123456789012345678901234567890.123456789", "-0.000000000000000000000000000001",
)  # fmt: skip


async def test_the_json_postgres_writes_is_what_the_models_write(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    async with books(make_settings, database_url) as b:
        rows = [
            (agent, T + n * MINUTE + timedelta(microseconds=n * 123457 % 1_000_000 * (n % 3)))
            for agent in ("momentum", "random")
            for n in range(len(ODD_AMOUNTS) * 2)
        ]
        await b.db.executemany(
            "INSERT INTO equity_snapshots (llm_id, at, source, equity, balance, margin_used, "
            "unrealized_pnl, total_fees, total_funding) "
            "VALUES ($1, $2, 'tick', $3, $4, $5, $6, $7, $8)",
            [
                (agent, at, *(Decimal(ODD_AMOUNTS[(n + k) % len(ODD_AMOUNTS)]) for k in range(6)))
                for n, (agent, at) in enumerate(rows)
            ],
        )
        queries = LedgerQueries(b.pool)
        for query in (
            EquityQuery(points=100, limit=20000),
            EquityQuery(points=5, limit=7),
            EquityQuery(agent_id="random", points=10, since=T + 3 * MINUTE),
        ):
            async with b.pool.acquire() as conn:
                agents = (
                    [query.agent_id] if query.agent_id else ["momentum", "mean-reversion", "random"]
                )
                records = await equity_series(conn, agents, query.since, query.points, query.limit)
            expected = EquitySeries(
                points=tuple(
                    EquityPoint(agent_id=r["llm_id"], **{f: r[f] for f in POINT_FIELDS})
                    for r in reversed(records)
                )
            )
            assert expected.points
            assert await queries.equity(query) == expected.to_bytes()

            # The columns: the same points, per agent, every amount as str() writes it.
            columns = await queries.equity(query.model_copy(update={"format": "columns"}))
            parsed = EquityColumns.model_validate_json(columns)
            assert parsed.to_bytes() == columns
            assert [a.agent_id for a in parsed.agents] == sorted(
                {p.agent_id for p in expected.points}
            )
            for agent in parsed.agents:
                mine = [p for p in expected.points if p.agent_id == agent.agent_id]
                assert list(agent.at) == [p.at for p in mine]
                assert [str(e) for e in agent.equity] == [str(p.equity) for p in mine]

        empty = EquityQuery(since=T + timedelta(days=9))
        assert await queries.equity(empty) == EquitySeries(points=()).to_bytes()
        empty_columns = empty.model_copy(update={"format": "columns"})
        assert await queries.equity(empty_columns) == EquityColumns(agents=()).to_bytes()


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


async def _newer_than_totals(db: asyncpg.Connection, agents: tuple[str, ...]) -> dict[str, int]:
    """Per agent, the buckets a request folds after its running total (a total each)."""
    newer = (
        "SELECT t.llm_id, (SELECT count(*) FROM equity_curve_buckets b "
        "WHERE b.llm_id = t.llm_id AND b.bucket_start >= t.through)::int "
        "FROM equity_curve_totals t WHERE t.llm_id = ANY($1::text[])"
    )
    return dict(await db.fetch(newer, list(agents)))


async def test_stats_from_running_totals_equal_the_full_computation_through_late_rows_and_thinning(
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
        # A running total per agent: a request folds only the newest two hours.
        assert await _newer_than_totals(b.db, agents) == dict.fromkeys(agents, 2)

        # The rest lands in buckets already summed: they are summed again.
        await _snapshots(b.db, history[len(history) // 2 :])
        again = await _stat_figures(queries)
        for agent in agents:
            assert again[agent] == await _full_figures(b.db, agent)
            assert again[agent] != first[agent]
        assert await _newer_than_totals(b.db, agents) == dict.fromkeys(agents, 2)

        # A late snapshot in an hour a total has folded: that total is folded anew.
        late = [(a, T - timedelta(days=9, seconds=30), Decimal("0.5")) for a in agents]
        await _snapshots(b.db, late)
        after_late = await _stat_figures(queries)
        for agent in agents:
            assert after_late[agent] == await _full_figures(b.db, agent)
            assert after_late[agent] != again[agent]  # a fall to 0.5 is the worst yet
        # (The total that had folded that hour without it would have missed the fall.)
        assert await _newer_than_totals(b.db, agents) == dict.fromkeys(agents, 2)
        again = after_late

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
        assert await _newer_than_totals(b.db, agents) == dict.fromkeys(agents, 2)


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
