"""Thinning equity snapshots on real Postgres: the stats query's max drawdown is unchanged,
cycle snapshots and each bucket's high, low and last stay, and ``verify`` still passes on
a ledger that has traded, been marked for days, and then been pruned."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from functools import partial
from typing import Any

import asyncpg
import pytest

from services.common import channels, subjects
from services.common.contracts import Stats, StatsQuery
from services.common.settings import Settings
from services.ledger.queries import LedgerQueries
from services.ledger.retention import RetentionPolicy
from services.ledger.verify import verify
from tests.builders import approved, buy, close, cycle_started, sell, snapshot, tick, verdict
from tests.ledger.harness import Ledger, ledger
from tests.ledger.test_retention import REMOVED, T, books
from tests.ledger.test_verify import _cli_verify
from tests.support import eventually

AGENTS = ("momentum", "random")
BTC, ETH = "BTCUSDT", "ETHUSDT"

# Per agent and hourly bucket of the thinned part: high, low and the last row's id.
_BUCKETS = """
SELECT llm_id, floor(extract(epoch FROM at) / $2) AS bucket,
       max(equity) AS high, min(equity) AS low,
       (array_agg(id ORDER BY at DESC, id DESC))[1] AS last
FROM equity_snapshots WHERE at < $1 GROUP BY 1, 2 ORDER BY 1, 2
"""


async def _rows(db: asyncpg.Connection, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in await db.fetch(sql, *args)]


async def _drawdowns(queries: LedgerQueries) -> dict[str, tuple[Decimal, Decimal | None]]:
    stats = await queries.stats(StatsQuery())
    return {a.agent_id: (a.max_drawdown_pct, a.sharpe_ratio) for a in stats.agents}


# An hour holds 6 snapshots per agent: a batch of 4 cuts into every bucket.
@pytest.mark.parametrize("batch_size", [4, 1000], ids=["bucket-over-a-batch", "many-buckets"])
async def test_thinning_keeps_the_stats_drawdown_and_what_charts_need(
    make_settings: Callable[..., Settings], database_url: str, batch_size: int
) -> None:
    async with books(make_settings, database_url) as b:
        # Ten days of a random walk: a tick snapshot every 10 minutes, a cycle's every 30
        # (and a decision's after it every hour), marked up to T.
        rng = random.Random(11)
        equity = dict.fromkeys(AGENTS, Decimal(100))
        rows: list[tuple[str, Any, str, Decimal]] = []
        at = T - timedelta(days=10)
        for n in range(1, 10 * 24 * 6 + 1):
            at += timedelta(minutes=10)
            for agent in AGENTS:
                step = Decimal(1000 + rng.randint(-25, 25)) / 1000
                equity[agent] = (equity[agent] * step).quantize(Decimal("0.000001"))
                kind = "cycle" if n % 3 == 0 else "decision" if n % 6 == 1 else "tick"
                rows.append((agent, at, f"{kind}:{n}", equity[agent]))
        await b.db.executemany(
            "INSERT INTO equity_snapshots (llm_id, at, source, equity, balance, margin_used, "
            "unrealized_pnl, total_fees, total_funding) VALUES ($1, $2, $3, $4, $4, 0, 0, 0, 0)",
            rows,
        )
        await b.db.execute(
            "INSERT INTO symbol_marks (symbol, marked_at, mark_price) VALUES ($1, $2, 1)", BTC, T
        )
        b.clock.advance(86400)  # the clock is ahead of the market: market time rules
        cutoff = T - timedelta(days=7)
        queries = LedgerQueries(b.pool)
        before = await _drawdowns(queries)
        buckets = await _rows(b.db, _BUCKETS, cutoff, 3600)
        cycles = await _rows(b.db, "SELECT id FROM equity_snapshots WHERE source LIKE 'cycle:%'")
        recent = await _rows(b.db, "SELECT * FROM equity_snapshots WHERE at >= $1", cutoff)
        total = len(rows)

        retention = b.retention(RetentionPolicy(batch_size=batch_size))
        removed = (await retention.prune_once())["equity_snapshots"]

        left = await b.db.fetchval("SELECT count(*) FROM equity_snapshots")
        assert removed == total - left == b.metric(REMOVED, table="equity_snapshots")
        # Of an hour's 3 tick and 1 decision snapshots, at most all 4 go.
        assert 0 < removed <= len(buckets) * 4
        after = await _drawdowns(queries)
        for agent in AGENTS:
            assert after[agent][0] == before[agent][0] > 0
        assert await _rows(b.db, _BUCKETS, cutoff, 3600) == buckets
        assert await _rows(b.db, "SELECT id FROM equity_snapshots WHERE source LIKE 'cycle:%'") == (
            cycles
        )
        assert await _rows(b.db, "SELECT * FROM equity_snapshots WHERE at >= $1", cutoff) == recent
        assert await _rows(b.db, "SELECT llm_id, thinned_until FROM equity_thinning") == [
            (agent, cutoff) for agent in sorted(AGENTS)
        ]
        # The next pass starts where this one stopped, and finds nothing more to drop.
        assert (await retention.prune_once())["equity_snapshots"] == 0


async def _trade_and_mark_for_days(lg: Ledger) -> None:
    """c1 opens positions; ticks every 3 hours for nine days (funding paid, marks moving);
    c2 closes the BTC longs."""
    t0 = lg.clock.now()
    btc, eth = Decimal(95000), Decimal(3000)
    await lg.start_cycle("c1", 1, {BTC: btc, ETH: eth}, *AGENTS)
    for agent, margin in zip(AGENTS, (10, 25), strict=True):
        v = verdict("c1", agent, t0, approved(buy(BTC, margin, 3)), approved(sell(ETH, 12, 2)))
        await lg.send_verdict(v)
    await eventually(lambda: len(lg.completed) == 1, what="c1 completed")

    for n in range(1, 9 * 8 + 1):
        lg.clock.advance(3 * 3600)
        wave = Decimal(str(round(math.sin(n / 5) * 0.04, 6)))
        marks = {BTC: (btc * (1 + wave)).quantize(Decimal("0.01")), ETH: eth - n}
        await lg.publish(subjects.MARKET_TICK, tick(f"t{n}", lg.clock.now(), marks), f"t{n}")
        # Applied before the clock moves on: applied_at is the tick's time, as in a live race.
        await eventually(partial(_counted, lg, "applied_ticks", n), what=f"t{n} applied")

    lg.clock.advance(600)
    now = lg.clock.now()
    await lg.start_cycle("c2", 2, {BTC: btc, ETH: eth}, *AGENTS)
    for agent in AGENTS:
        v = verdict("c2", agent, now, approved(close(BTC)))
        await lg.send_verdict(v)
    await eventually(lambda: len(lg.completed) == 2, what="c2 completed")
    await eventually(
        lambda: _counted(lg, "outbox WHERE published_at IS NULL", 0), what="every event sent"
    )


async def _counted(lg: Ledger, rows: str, expected: int) -> bool:
    return await lg.count(f"SELECT count(*) FROM {rows}") == expected


async def test_verify_and_the_stats_drawdown_survive_pruning_and_thinning(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    env = {
        "ARENA_RETENTION_MARKET_DATA_DAYS": 1,
        "ARENA_RETENTION_EQUITY_FULL_DAYS": 2,
        "ARENA_RETENTION_EQUITY_BUCKET_MINUTES": 1440,
    }
    async with ledger(make_settings, database_url, **env) as lg:
        await _trade_and_mark_for_days(lg)
        assert await lg.count("SELECT count(*) FROM funding_payments") > 0
        # Forty days on (no market since: market time stays at c2), and the rows Postgres
        # stamped as old as that too. Past the 45-day dedup horizon: the first 4 days' ticks.
        lg.clock.advance(40 * 86400)
        await lg.db.execute("UPDATE processed_messages SET processed_at = now() - interval '60d'")
        await lg.db.execute("UPDATE market_data SET stored_at = now() - interval '60d'")
        tables = ("processed_messages", "applied_ticks", "outbox", "market_data")
        counts = {t: await lg.count(f"SELECT count(*) FROM {t}") for t in tables}
        snapshots = await lg.count("SELECT count(*) FROM equity_snapshots")
        stats_before = await lg.bus.request(
            channels.LEDGER_QUERY_STATS.subject, StatsQuery(), Stats
        )

        removed = await lg.service.retention.prune_once()

        assert removed == {
            "processed_messages": counts["processed_messages"],
            # Ticks applied more than 45 days before the clock.
            "applied_ticks": removed["applied_ticks"],
            "outbox": counts["outbox"],
            # c1's rows; c2's are each symbol's newest.
            "market_data": 2,
            "equity_snapshots": snapshots - await lg.count("SELECT count(*) FROM equity_snapshots"),
        }
        assert 0 < removed["applied_ticks"] < counts["applied_ticks"]
        assert removed["equity_snapshots"] > 0
        assert await verify(lg.db) == []
        stats_after = await lg.bus.request(channels.LEDGER_QUERY_STATS.subject, StatsQuery(), Stats)
        for old, new in zip(stats_before.agents, stats_after.agents, strict=True):
            assert (new.agent_id, new.max_drawdown_pct) == (old.agent_id, old.max_drawdown_pct)
            assert (new.equity, new.realized_pnl) == (old.equity, old.realized_pnl)
            assert old.max_drawdown_pct > 0 or old.agent_id not in AGENTS

        # The pruned ledger goes on trading: c3 closes the ETH shorts.
        now = lg.clock.now()
        prices = {BTC: Decimal(95500), ETH: Decimal(2900)}
        await lg.publish(subjects.CYCLE_STARTED, cycle_started("c3", 3, now, AGENTS), "c3")
        await lg.publish(
            subjects.MARKET_SNAPSHOT, snapshot(cycle_id="c3", at=now, prices=prices), "c3"
        )
        for agent in AGENTS:
            v = verdict("c3", agent, now, approved(close(ETH)))
            await lg.send_verdict(v)
        await eventually(lambda: len(lg.completed) == 3, what="c3 completed")
        assert await lg.count("SELECT count(*) FROM positions WHERE status = 'OPEN'") == 0
        assert await verify(lg.db) == []

    result = await _cli_verify(database_url)
    assert (result.returncode, result.stdout.strip()) == (0, "ok"), result.stderr
