"""SIGKILL the ledger during a burst of verdicts and ticks: nothing lost, nothing applied twice."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from services.common import subjects
from services.common.bus import Bus, BusMetrics
from services.common.contracts import (
    Action,
    ActionResult,
    CycleStarted,
    Decision,
    MarketSnapshot,
    MarketTick,
    TickPrice,
    Verdict,
)
from services.common.settings import PROJECT_ROOT
from tests import builders
from tests.builders import bar, buy, close, sell, symbol_snapshot
from tests.e2e.gate import Gate
from tests.e2e.processes import ServiceProcess
from tests.support import eventually

pytestmark = pytest.mark.e2e

AGENTS = ("momentum", "mean-reversion", "random")
CYCLES = 24
START = datetime.now(UTC).replace(microsecond=0)


def _price(n: int) -> Decimal:
    return Decimal(95000) + Decimal(n * 137 % 2000) - Decimal(1000)


def _cycle(n: int) -> tuple[CycleStarted, MarketSnapshot]:
    """Cycle ``n`` of the first burst: BTC only, a 200 wide day, funding 8 h after its start."""
    started = START + timedelta(seconds=n)
    funding = (Decimal("0.0001"), started + timedelta(hours=8))
    return _market_cycle(f"crash-{n:03d}", n, {"BTCUSDT": _price(n)}, 100, funding)


def _verdict(started: CycleStarted, agent: str, n: int) -> Verdict:
    action = buy("BTCUSDT", 10, 3) if n % 2 == 1 else close("BTCUSDT")
    return _approved(started, agent, (action,), reasoning=f"step {n}")


@contextlib.asynccontextmanager
async def _ledger_process(
    nats_url: str, database_url: str, tmp_path: Path, **env: str
) -> AsyncIterator[tuple[ServiceProcess, Bus, asyncpg.Connection]]:
    """The ledger as its own process (to be killed), a client of its NATS and its database;
    on the way out the ledger must stop cleanly."""
    env = {"NATS_URL": nats_url, "DATABASE_URL": database_url, "METRICS_PORT": "0", **env}
    ledger = ServiceProcess("ledger", "ledger", env, tmp_path)
    ledger.start()
    await ledger.wait_started()

    bus = await Bus.connect(nats_url, "crash-test", BusMetrics(CollectorRegistry()))
    conn = await asyncpg.connect(database_url)
    try:
        yield ledger, bus, conn
    finally:
        await conn.close()
        await bus.close()
        assert ledger.stop() == 0


async def test_sigkill_during_a_burst_loses_nothing_and_applies_nothing_twice(
    nats_url: str, database_url: str, tmp_path: Path
) -> None:
    async with _ledger_process(nats_url, database_url, tmp_path) as (ledger, bus, conn):
        # The fifth decision waits in its transaction: at most four applied, the rest to come.
        gate = Gate(conn)
        await gate.close_on("decisions", "(SELECT count(*) FROM decisions) >= 5")
        for n in range(1, CYCLES + 1):
            started, snapshot = _cycle(n)
            await bus.publish(subjects.CYCLE_STARTED, started, started.cycle_id)
            await bus.publish(subjects.MARKET_SNAPSHOT, snapshot, snapshot.cycle_id)
            for agent in AGENTS:
                verdict = _verdict(started, agent, n)
                subject = subjects.decision_verdict(agent)
                await bus.publish(subject, verdict, verdict.verdict_id)
                # The same verdict again under another message id: JetStream keeps both.
                await bus.publish(subject, verdict, f"{verdict.verdict_id}:again")

        async def decisions() -> int:
            return int(await conn.fetchval("SELECT count(*) FROM decisions"))

        await eventually(lambda: gate.holding("decisions"), what="a verdict held at the gate")
        ledger.kill()
        await gate.open()
        assert await decisions() <= 4

        ledger.start()
        await ledger.wait_started()
        await eventually(
            lambda: _at_least(decisions, CYCLES * len(AGENTS)),
            timeout=60,
            what="every verdict applied after the restart",
        )
        await eventually(
            lambda: _outbox_drained(conn), timeout=30, what="every outbox event published"
        )

        per_agent = await conn.fetch(
            "SELECT llm_id, count(*) AS trades FROM trades GROUP BY llm_id ORDER BY llm_id"
        )
        assert {r["llm_id"]: r["trades"] for r in per_agent} == dict.fromkeys(AGENTS, CYCLES)
        completed = await conn.fetchval("SELECT count(*) FROM cycles WHERE status = 'completed'")
        assert completed == CYCLES
        open_positions = await conn.fetchval("SELECT count(*) FROM positions WHERE status = 'OPEN'")
        assert open_positions == 0

    await _verify_passes(ledger.env)


async def _at_least(count: Callable[[], Awaitable[int]], minimum: int) -> bool:
    return await count() >= minimum


async def _equals(value: Callable[[], Awaitable[object]], expected: object) -> bool:
    return await value() == expected


def _first_cycle_at(burst: list[Published], sequence: int) -> int:
    """The index in ``burst`` of the start of its cycle ``sequence`` (1-based)."""
    return next(
        i
        for i, (_, m, _) in enumerate(burst)
        if isinstance(m, CycleStarted) and m.cycle_id == f"burst-{sequence:03d}"
    )


async def _outbox_drained(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0)


# ---------------------------------------------------------------- verdicts and ticks
#
# The verdict and tick consumers run side by side, so which of a verdict and a tick the
# ledger applies first is not fixed, and ticks fetched by the killed process come back
# after their ack wait, out of order. The scenario is therefore built so that its outcome
# does not depend on that order:
#
# - a setup cycle, applied before the burst, opens the positions ticks act on (ETH and
#   SOL with stops and targets, XRP with both inside one bar, BNB and DOGE to be funded);
# - each stop/target tick fires exactly one position whichever ticks came before it;
# - funding ticks price only BNB and DOGE, which no tick closes and no verdict touches;
# - the burst's verdicts open and close BTC, which ticks mark but cannot close, and
#   ordinary ticks are stamped before any funding time the positions were open across.
#
# Prices are chosen so every quantity is exact (margin x leverage / price on the step).

FEE_RATE = Decimal("0.0005")
FUNDING_RATE = Decimal("0.0001")
INITIAL_BALANCE = Decimal(100)
BURST_CYCLES = 16
SETUP_PRICES = {
    "BTCUSDT": Decimal(60000),
    "ETHUSDT": Decimal(2500),
    "SOLUSDT": Decimal(125),
    "BNBUSDT": Decimal(500),
    "XRPUSDT": Decimal("0.5"),
    "DOGEUSDT": Decimal("0.2"),
}


def _funding_time(at: datetime) -> datetime:
    """The last 00:00, 08:00 or 16:00 UTC at or before ``at``."""
    return at.replace(hour=at.hour // 8 * 8, minute=0, second=0, microsecond=0)


# Sixteen hours after the last funding time before the test: at least eight hours ahead of
# any position's opening, so every open position is due for it, whatever the wall clock.
FIRST_FUNDING = _funding_time(START) + timedelta(hours=16)
SECOND_FUNDING = FIRST_FUNDING + timedelta(hours=8)


# Levels differ per agent so that each tick below reaches exactly one of them.
SETUP_ACTIONS: dict[str, tuple[Action, ...]] = {
    "momentum": (
        buy("ETHUSDT", 10, 5, stop_loss="2450", take_profit="2600"),
        sell("SOLUSDT", 10, 5, stop_loss="128", take_profit="115"),
        buy("BNBUSDT", 10, 2),
    ),
    "mean-reversion": (
        buy("ETHUSDT", 10, 5, stop_loss="2400", take_profit="2550"),
        sell("SOLUSDT", 10, 5, stop_loss="135", take_profit="122"),
        buy("BNBUSDT", 10, 2),
    ),
    "random": (
        buy("ETHUSDT", 10, 5, stop_loss="2300", take_profit="2700"),
        # One bar reaches both: the stop (worse for the trader) must fill.
        buy("XRPUSDT", 10, 5, stop_loss="0.49", take_profit="0.52"),
        sell("DOGEUSDT", 10, 2),
        buy("BNBUSDT", 10, 2),
    ),
}


# Ordinary ticks: BTC and BNB marks that fire nothing, plus one bar that fires one exit.
EXIT_BARS: dict[str, TickPrice] = {
    "eth-tp": bar("ETHUSDT", "2520", low="2490", high="2560"),  # mean-reversion's target 2550
    "eth-sl": bar("ETHUSDT", "2455", low="2440", high="2510"),  # momentum's stop 2450
    "sol-sl": bar("SOLUSDT", "127", low="124", high="129"),  # momentum's short stop 128
    "sol-tp": bar("SOLUSDT", "123", low="121", high="126"),  # mean-reversion's short target 122
    # random's stop 0.49 and target 0.52
    "xrp-both": bar("XRPUSDT", "0.5", low="0.48", high="0.53"),
}
# Funding ticks: two after the first funding time (one payment), one after the second.
# They carry the same marks, so what a payment costs does not depend on which tick pays.
FUNDING_TICKS = {
    "fund-1a": FIRST_FUNDING + timedelta(minutes=1),
    "fund-1b": FIRST_FUNDING + timedelta(minutes=2),
    "fund-2": SECOND_FUNDING + timedelta(minutes=1),
}
BNB_FUNDING_MARK, DOGE_FUNDING_MARK = "510", "0.21"


def _ordinary_tick(tick_id: str, k: int, extra: TickPrice | None = None) -> MarketTick:
    prices = [
        bar("BTCUSDT", "60000", low="59500", high="60500"),
        bar("BNBUSDT", "500", low="495", high="505"),
    ]
    if extra is not None:
        prices.append(extra)
    # Within the test's first second: before any funding time after the positions opened.
    return MarketTick(tick_id=tick_id, at=START + timedelta(milliseconds=k), prices=tuple(prices))


def _funding_tick(tick_id: str) -> MarketTick:
    return MarketTick(
        tick_id=tick_id,
        at=FUNDING_TICKS[tick_id],
        prices=(
            bar("BNBUSDT", BNB_FUNDING_MARK, low="505", high="515"),
            bar("DOGEUSDT", DOGE_FUNDING_MARK, low="0.2", high="0.22"),
        ),
    )


def _funding_times_while_open(opened_at: datetime) -> list[datetime]:
    """Every funding time from the opening to the last funding tick (each paid once)."""
    when = _funding_time(opened_at)
    if when < opened_at:
        when += timedelta(hours=8)
    times = []
    while when <= SECOND_FUNDING:
        times.append(when)
        when += timedelta(hours=8)
    return times


def _market_cycle(
    cycle_id: str,
    n: int,
    prices: dict[str, Decimal],
    spread: int = 0,
    funding: tuple[Decimal, datetime] = (FUNDING_RATE, FIRST_FUNDING),
) -> tuple[CycleStarted, MarketSnapshot]:
    """Cycle ``n``'s start and snapshot: each symbol's day ``spread`` either side of its price."""
    started = START + timedelta(seconds=n)
    symbols = tuple(
        symbol_snapshot(s, p, high=p + spread, low=p - spread, funding=funding)
        for s, p in prices.items()
    )
    hour = timedelta(hours=1)
    return (
        builders.cycle_started(cycle_id, n, started, AGENTS, hour.seconds, symbols=tuple(prices)),
        builders.snapshot(
            *symbols, cycle_id=cycle_id, at=started, deadline=started + hour, source="test"
        ),
    )


def _approved(
    started: CycleStarted, agent: str, actions: tuple[Action, ...], reasoning: str = ""
) -> Verdict:
    decision = Decision(
        decision_id=Decision.make_id(started.cycle_id, agent),
        cycle_id=started.cycle_id,
        agent_id=agent,
        decided_at=started.started_at,
        decision_deadline=started.decision_deadline,
        actions=actions,
        reasoning=reasoning or f"{started.cycle_id} {agent}",
    )
    return Verdict(
        verdict_id=decision.decision_id,
        decided_at=started.started_at,
        decision=decision,
        results=tuple(
            ActionResult(index=i, action=a, approved=True) for i, a in enumerate(actions)
        ),
    )


def _btc_price(n: int) -> Decimal:
    # Open at 60,000 on odd cycles, close at 75,000 on even ones: every round trip wins.
    return Decimal(60000) if n % 2 == 1 else Decimal(75000)


Published = tuple[str, Verdict | MarketTick | CycleStarted | MarketSnapshot, str]


def _burst() -> list[Published]:
    """Every message of the burst in publication order, duplicates included."""
    out: list[Published] = []
    specials = {2: "eth-tp", 5: "sol-sl", 7: "xrp-both", 10: "eth-sl", 13: "sol-tp"}
    funding = {4: "fund-1a", 9: "fund-1b", 14: "fund-2"}
    k = 0
    for n in range(1, BURST_CYCLES + 1):
        started, snapshot = _market_cycle(f"burst-{n:03d}", n + 1, {"BTCUSDT": _btc_price(n)})
        out.append((subjects.CYCLE_STARTED, started, started.cycle_id))
        out.append((subjects.MARKET_SNAPSHOT, snapshot, snapshot.cycle_id))
        ticks: list[MarketTick] = []
        for _ in range(3):
            k += 1
            ticks.append(_ordinary_tick(f"tick-{k:03d}", k))
        if n in specials:
            k += 1
            ticks.append(_ordinary_tick(specials[n], k, EXIT_BARS[specials[n]]))
        if n in funding:
            ticks.append(_funding_tick(funding[n]))
        action = buy("BTCUSDT", 10, 3) if n % 2 == 1 else close("BTCUSDT")
        for i, agent in enumerate(AGENTS):
            verdict = _approved(started, agent, (action,))
            subject = subjects.decision_verdict(agent)
            out.append((subject, verdict, verdict.verdict_id))
            out.append((subject, verdict, f"{verdict.verdict_id}:again"))
            tick = ticks[i % len(ticks)]
            out.append((subjects.MARKET_TICK, tick, tick.tick_id))
        for tick in ticks[len(AGENTS) :]:
            out.append((subjects.MARKET_TICK, tick, tick.tick_id))
        # The same ticks again under other message ids: JetStream keeps both copies.
        for tick in ticks:
            out.append((subjects.MARKET_TICK, tick, f"{tick.tick_id}:again"))
    return out


class Expected:
    """The books as worked out by hand from the scenario, independently of the ledger."""

    def __init__(self) -> None:
        self.balance = dict.fromkeys(AGENTS, INITIAL_BALANCE)
        self.trades = dict.fromkeys(AGENTS, 0)
        self.exits: dict[tuple[str, str], int] = {}
        self.funding_rows = dict.fromkeys(AGENTS, 0)
        self.funding = dict.fromkeys(AGENTS, Decimal(0))
        self.still_open: dict[str, set[str]] = {a: set() for a in AGENTS}

    def open(self, agent: str, symbol: str, price: Decimal, margin: int, leverage: int) -> Decimal:
        quantity = Decimal(margin * leverage) / price
        self.balance[agent] -= margin + FEE_RATE * price * quantity
        self.trades[agent] += 1
        self.still_open[agent].add(symbol)
        return quantity

    def close(
        self,
        agent: str,
        symbol: str,
        *,
        reason: str,
        pnl: str | Decimal,
        exit_notional: str | Decimal,
    ) -> None:
        """Close a 10 USDT position: margin back, PnL in, fee on the exit notional out."""
        self.balance[agent] += 10 + Decimal(pnl) - FEE_RATE * Decimal(exit_notional)
        self.trades[agent] += 1
        self.exits[(agent, reason)] = self.exits.get((agent, reason), 0) + 1
        self.still_open[agent].discard(symbol)

    def fund(self, agent: str, amount: Decimal) -> None:
        self.balance[agent] -= amount
        self.funding[agent] += amount
        self.funding_rows[agent] += 1


def _expected(funding_times: dict[tuple[str, str], list[datetime]]) -> Expected:
    """``funding_times``: when each funded position (agent, symbol) should have paid."""
    e = Expected()
    p = SETUP_PRICES
    for agent in AGENTS:
        for action in SETUP_ACTIONS[agent]:
            assert action.symbol and action.margin_usd and action.leverage
            e.open(agent, action.symbol, p[action.symbol], int(action.margin_usd), action.leverage)
    # Long ETH 0.02 and short SOL 0.4 at 5x, long XRP 100: (exit - entry) x qty, signed.
    # 2550 x 0.02 = 51.0 of notional at the target, and so on.
    e.close("mean-reversion", "ETHUSDT", reason="take_profit", pnl="1.0", exit_notional="51.0")
    e.close("momentum", "ETHUSDT", reason="stop_loss", pnl="-1.0", exit_notional="49.0")
    e.close("momentum", "SOLUSDT", reason="stop_loss", pnl="-1.2", exit_notional="51.2")
    e.close("mean-reversion", "SOLUSDT", reason="take_profit", pnl="1.2", exit_notional="48.8")
    e.close("random", "XRPUSDT", reason="stop_loss", pnl="-1.0", exit_notional="49.0")
    # BNB long 0.04 pays mark x 0.04 x 0.0001; DOGE short 100 receives mark x 100 x 0.0001.
    for (agent, symbol), times in funding_times.items():
        quantity, sign = (Decimal("0.04"), 1) if symbol == "BNBUSDT" else (Decimal(100), -1)
        mark = Decimal(BNB_FUNDING_MARK if symbol == "BNBUSDT" else DOGE_FUNDING_MARK)
        for _ in times:
            e.fund(agent, sign * mark * quantity * FUNDING_RATE)
    for n in range(1, BURST_CYCLES + 1, 2):
        for agent in AGENTS:
            qty = e.open(agent, "BTCUSDT", _btc_price(n), 10, 3)
            close = _btc_price(n + 1)
            pnl = (close - _btc_price(n)) * qty
            e.close(agent, "BTCUSDT", reason="decision", pnl=pnl, exit_notional=close * qty)
    return e


async def _count(conn: asyncpg.Connection, sql: str, *args: object) -> int:
    return int(await conn.fetchval(sql, *args))


async def test_sigkill_during_verdicts_and_ticks_applies_each_exactly_once(
    nats_url: str, database_url: str, tmp_path: Path
) -> None:
    burst = _burst()
    tick_msg_ids = sorted(f"{s}:{nid}" for s, m, nid in burst if isinstance(m, MarketTick))
    # "random" holds four positions and opens BTC on top; the ledger enforces the limit.
    process = _ledger_process(nats_url, database_url, tmp_path, ARENA_MAX_OPEN_POSITIONS="5")
    async with process as (ledger, bus, conn):
        started, snapshot = _market_cycle("setup", 1, SETUP_PRICES)
        await bus.publish(subjects.CYCLE_STARTED, started, started.cycle_id)
        await bus.publish(subjects.MARKET_SNAPSHOT, snapshot, snapshot.cycle_id)
        for agent in AGENTS:
            verdict = _approved(started, agent, SETUP_ACTIONS[agent])
            await bus.publish(subjects.decision_verdict(agent), verdict, verdict.verdict_id)
        setup_positions = sum(len(a) for a in SETUP_ACTIONS.values())
        await eventually(
            lambda: _at_least(
                lambda: _count(conn, "SELECT count(*) FROM positions"), setup_positions
            ),
            what="the setup positions opened",
        )
        assert await _count(conn, "SELECT count(*) FROM positions") == setup_positions

        async def publish(messages: list[Published]) -> None:
            for subject, message, natural_id in messages:
                await bus.publish(subject, message, natural_id)

        async def applied() -> tuple[int, int]:
            decisions = await _count(conn, "SELECT count(*) FROM decisions")
            ticks = await _count(
                conn,
                "SELECT count(*) FROM processed_messages WHERE msg_id LIKE 'arena.market.tick:%'",
            )
            return decisions - len(AGENTS), ticks

        # The first half of the burst is applied; the second is killed in its fourth verdict,
        # which waits at a gate in its transaction whatever the machine's speed.
        half = _first_cycle_at(burst, BURST_CYCLES // 2 + 1)
        first_half_ticks = sum(isinstance(m, MarketTick) for _, m, _ in burst[:half])
        first_half_decisions = BURST_CYCLES // 2 * len(AGENTS)
        await publish(burst[:half])
        await eventually(
            lambda: _equals(applied, (first_half_decisions, first_half_ticks)),
            what="the first half of the burst applied",
        )
        gate = Gate(conn)
        held = len(AGENTS) + first_half_decisions + 4
        await gate.close_on("decisions", f"(SELECT count(*) FROM decisions) >= {held}")
        publisher = asyncio.create_task(publish(burst[half:]))
        await eventually(lambda: gate.holding("decisions"), what="a verdict held at the gate")
        ledger.kill()
        await gate.open()
        decisions_at_kill, ticks_at_kill = await applied()
        await publisher
        assert first_half_decisions <= decisions_at_kill < first_half_decisions + 4
        assert first_half_ticks <= ticks_at_kill < len(tick_msg_ids)

        ledger.start()
        await ledger.wait_started()

        async def all_applied() -> bool:
            decisions, ticks = await applied()
            return decisions == BURST_CYCLES * len(AGENTS) and ticks == len(tick_msg_ids)

        await eventually(
            all_applied, timeout=60, what="every verdict and tick applied after the restart"
        )
        await eventually(
            lambda: _outbox_drained(conn), timeout=30, what="every outbox event published"
        )

        await _assert_books(conn, burst)

    await _verify_passes(ledger.env)


async def _assert_books(conn: asyncpg.Connection, burst: list[Published]) -> None:
    """The database holds exactly the hand-worked outcome of the setup and the burst."""
    tick_ids = sorted({m.tick_id for _, m, _ in burst if isinstance(m, MarketTick)})
    tick_msg_ids = sorted(f"{s}:{nid}" for s, m, nid in burst if isinstance(m, MarketTick))
    # The wall clock the positions opened at decides whether the funding time just before
    # the first one (hours ahead) fell while they were open; everything else is scripted.
    opened = await conn.fetch(
        "SELECT llm_id, symbol, opened_at FROM positions WHERE symbol IN ('BNBUSDT', 'DOGEUSDT')"
    )
    funding_times = {
        (r["llm_id"], r["symbol"]): _funding_times_while_open(r["opened_at"]) for r in opened
    }
    assert len(funding_times) == 4
    expected = _expected(funding_times)
    # Each message id applied once and none lost, duplicates under other ids included.
    processed = await conn.fetch(
        "SELECT msg_id FROM processed_messages WHERE msg_id LIKE 'arena.market.tick:%' "
        "ORDER BY msg_id"
    )
    assert [r["msg_id"] for r in processed] == tick_msg_ids
    # Every tick was applied: each left its equity snapshot (how many copies is the
    # business of test_a_tick_copy_under_another_message_id_changes_nothing).
    sources = await conn.fetch(
        "SELECT DISTINCT source FROM equity_snapshots WHERE source LIKE 'tick:%' ORDER BY source"
    )
    assert [r["source"] for r in sources] == [f"tick:{t}" for t in tick_ids]

    trades = await conn.fetch(
        "SELECT llm_id, count(*) AS n FROM trades GROUP BY llm_id ORDER BY llm_id"
    )
    refusals = await conn.fetch(
        "SELECT llm_id, cycle_id, symbol, decision, reason_codes FROM rejected_decisions"
    )
    assert {r["llm_id"]: r["n"] for r in trades} == expected.trades, [tuple(r) for r in refusals]
    exits = await conn.fetch(
        "SELECT llm_id, exit_reason, count(*) AS n FROM trades "
        "WHERE exit_reason IS NOT NULL GROUP BY llm_id, exit_reason"
    )
    assert {(r["llm_id"], r["exit_reason"]): r["n"] for r in exits} == expected.exits

    funding = await conn.fetch(
        "SELECT llm_id, count(*) AS n, sum(amount) AS paid, "
        "count(DISTINCT (position_id, funding_time)) AS distinct_n, "
        "array_agg(DISTINCT funding_time) AS times "
        "FROM funding_payments GROUP BY llm_id ORDER BY llm_id"
    )
    assert {r["llm_id"]: r["n"] for r in funding} == expected.funding_rows
    assert {r["llm_id"]: r["distinct_n"] for r in funding} == expected.funding_rows
    assert {r["llm_id"]: r["paid"] for r in funding} == expected.funding
    for r in funding:
        assert FIRST_FUNDING in r["times"] and SECOND_FUNDING in r["times"]

    still_open = await conn.fetch(
        "SELECT llm_id, array_agg(symbol) AS symbols FROM positions "
        "WHERE status = 'OPEN' GROUP BY llm_id"
    )
    assert {r["llm_id"]: set(r["symbols"]) for r in still_open} == expected.still_open
    balances = await conn.fetch(
        "SELECT llm_id, balance, total_funding FROM llm_accounts WHERE llm_id = ANY($1)",
        list(AGENTS),
    )
    assert {r["llm_id"]: r["balance"] for r in balances} == expected.balance
    assert {r["llm_id"]: r["total_funding"] for r in balances} == expected.funding
    completed = await _count(conn, "SELECT count(*) FROM cycles WHERE status = 'completed'")
    assert completed == BURST_CYCLES + 1


async def test_a_tick_copy_under_another_message_id_changes_nothing(
    nats_url: str, database_url: str, tmp_path: Path
) -> None:
    async with _ledger_process(nats_url, database_url, tmp_path) as (_, bus, conn):
        tick = _ordinary_tick("copied", 0)
        await bus.publish(subjects.MARKET_TICK, tick, tick.tick_id)
        await bus.publish(subjects.MARKET_TICK, tick, f"{tick.tick_id}:again")
        await eventually(
            lambda: _at_least(
                lambda: _count(
                    conn,
                    "SELECT count(*) FROM processed_messages "
                    "WHERE msg_id LIKE 'arena.market.tick:%'",
                ),
                2,
            ),
            what="both copies consumed",
        )
        accounts = await _count(conn, "SELECT count(*) FROM llm_accounts")
        snapshots = await _count(
            conn, "SELECT count(*) FROM equity_snapshots WHERE source = $1", "tick:copied"
        )
        assert snapshots == accounts


async def _verify_passes(env: dict[str, str]) -> None:
    """``python -m services.ledger verify`` on the test's database exits 0."""
    verify = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.ledger", "verify",
        cwd=PROJECT_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(verify.communicate(), timeout=60)
    assert verify.returncode == 0, output.decode()
