"""The ledger in-process against real NATS and Postgres: cycles, verdicts, events, queries."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from decimal import Decimal

import pytest

from services.common import channels, subjects
from services.common.bus import RemoteError
from services.common.contracts import (
    Accounts,
    AccountsQuery,
    Action,
    AgentOutcome,
    Decisions,
    DecisionsQuery,
    Leaderboard,
    LeaderboardQuery,
    Portfolio,
    PortfolioQuery,
    Portfolios,
    PortfoliosQuery,
    PositionSide,
    Reason,
    StatsQuery,
    Verdict,
)
from services.common.settings import Settings
from services.ledger import sql
from services.ledger.views import account_view
from tests.builders import (
    approved,
    buy,
    close,
    cycle_started,
    hold,
    llm_call,
    rejected,
    sell,
    snapshot,
    tick,
    verdict,
)
from tests.ledger.harness import Ledger, ledger
from tests.support import eventually, publish_raw

MakeSettings = Callable[..., Settings]
BTC, ETH = "BTCUSDT", "ETHUSDT"


async def _two_cycles(lg: Ledger) -> None:
    """c1: momentum opens a BTC long and an ETH short, random a BTC long (one action
    rejected by risk); c2: momentum closes its BTC long at a profit, random holds."""
    now = lg.clock.now()
    await lg.start_cycle("c1", 1, {BTC: Decimal(95000), ETH: Decimal(3000)}, "momentum", "random")
    v1 = verdict("c1", "momentum", now, approved(buy(BTC, 10, 3)), approved(sell(ETH, 20, 2)))
    v2 = verdict(
        "c1",
        "random",
        now,
        approved(buy(BTC, 30, 10)),
        rejected(
            sell(ETH, 40, 2, confidence=0.6), ("margin_too_high", "margin 40 > 30"), ("x", "second")
        ),
    )
    for v in (v1, v2):
        await lg.send_verdict(v)
    await eventually(lambda: len(lg.completed) == 1, what="c1 completed")

    await lg.start_cycle("c2", 2, {BTC: Decimal(96000), ETH: Decimal(2900)}, "momentum", "random")
    for v in (
        verdict("c2", "momentum", now, approved(close(BTC))),
        verdict("c2", "random", now, approved(hold())),
    ):
        await lg.send_verdict(v)
    await eventually(lambda: len(lg.completed) == 2, what="c2 completed")


async def _check_queries(lg: Ledger) -> None:
    """The state after _two_cycles, as the request-reply queries answer it."""
    portfolio = await lg.bus.request(
        channels.LEDGER_QUERY_PORTFOLIO.subject, PortfolioQuery(agent_id="momentum"), Portfolio
    )
    assert portfolio.account.equity == Decimal("101.590445")
    [eth] = portfolio.positions
    assert (eth.symbol, eth.side, eth.current_price) == (ETH, PositionSide.SHORT, Decimal(2900))
    with pytest.raises(RemoteError) as missing:
        await lg.bus.request(
            channels.LEDGER_QUERY_PORTFOLIO.subject, PortfolioQuery(agent_id="nobody"), Portfolio
        )
    assert missing.value.reply.code == "not_found"
    # Several at once (a host's agents): in the order asked, one without an account left out.
    several = await lg.bus.request(
        channels.LEDGER_QUERY_PORTFOLIOS.subject,
        PortfoliosQuery(agent_ids=("random", "nobody", "momentum")),
        Portfolios,
    )
    assert [p.account.agent_id for p in several.portfolios] == ["random", "momentum"]
    assert several.portfolios[1] == portfolio
    accounts = await lg.bus.request(
        channels.LEDGER_QUERY_ACCOUNTS.subject, AccountsQuery(), Accounts
    )
    assert [a.agent_id for a in accounts.accounts] == ["mean-reversion", "momentum", "random"]
    board = await lg.bus.request(
        channels.LEDGER_QUERY_LEADERBOARD.subject, LeaderboardQuery(), Leaderboard
    )
    assert [(e.rank, e.agent_id) for e in board.entries] == [
        (1, "random"),
        (2, "momentum"),
        (3, "mean-reversion"),
    ]
    assert board.entries[1].win_rate == Decimal(100)
    assert board.entries[2].return_pct == Decimal(0)


async def test_verdicts_open_and_close_positions_with_exact_accounting(lg: Ledger) -> None:
    assert lg.service.readiness() == {"database": True}
    await _two_cycles(lg)

    momentum = await lg.account("momentum")
    # Quantities round down to the step (BTC 0.00001, ETH 0.0001):
    # 100 - 10 - 0.014725 (BTC open, 0.00031) - 20 - 0.01995 (ETH open, 0.0133)
    #     + 10 + 0.31 - 0.01488 (BTC close at 96,000)
    assert momentum["balance"] == Decimal("80.260445")
    assert momentum["margin_used"] == Decimal(20)
    assert momentum["realized_pnl"] == Decimal("0.31")
    assert momentum["total_fees"] == Decimal("0.049555")
    # the ETH short of 0.0133 marked from 3,000 to 2,900 by c2's snapshot
    assert momentum["unrealized_pnl"] == Decimal("1.33")
    assert momentum["total_pnl"] == Decimal("0.31") - Decimal("0.049555") + Decimal("1.33")
    assert (
        momentum["total_trades"],
        momentum["winning_trades"],
        momentum["losing_trades"],
        momentum["open_positions"],
    ) == (3, 1, 0, 1)
    random = await lg.account("random")
    assert random["balance"] == Decimal("69.850375")
    assert random["unrealized_pnl"] == Decimal("3.15")

    trades = await lg.db.fetch(
        "SELECT action, side, entry_price, exit_price, quantity, realized_pnl, fees, "
        "exit_reason, cycle_id FROM trades WHERE llm_id = 'momentum' AND symbol = $1 "
        "ORDER BY executed_at, exit_price NULLS FIRST",
        BTC,
    )
    assert [tuple(t) for t in trades] == [
        ("BUY", "LONG", 95000, None, Decimal("0.00031"), None, Decimal("0.014725"),
         None, "c1"),
        ("SELL", "LONG", 95000, 96000, Decimal("0.00031"), Decimal("0.31"),
         Decimal("0.01488"), "decision", "c2"),
    ]  # fmt: skip
    statuses = await lg.db.fetch(
        "SELECT llm_id, symbol, side, status FROM positions ORDER BY llm_id, symbol"
    )
    assert [tuple(s) for s in statuses] == [
        ("momentum", BTC, "LONG", "CLOSED"),
        ("momentum", ETH, "SHORT", "OPEN"),
        ("random", BTC, "LONG", "OPEN"),
    ]
    rejection = await lg.db.fetchrow("SELECT * FROM rejected_decisions")
    assert rejection["llm_id"] == "random"
    assert rejection["decision"] == "SELL"
    assert rejection["reason_codes"] == ["margin_too_high", "x"]
    assert rejection["rejection_reason"] == "margin 40 > 30; second"
    assert rejection["confidence"] == Decimal("0.6")
    assert await lg.count("SELECT count(*) FROM market_data") == 4

    # Events, all through the outbox.
    await eventually(lambda: len(lg.positions) == 4 and len(lg.accounts) == 4)
    assert [(e.kind, e.position.agent_id, e.position.symbol) for e in lg.positions] == [
        ("opened", "momentum", BTC),
        ("opened", "momentum", ETH),
        ("opened", "random", BTC),
        ("closed", "momentum", BTC),
    ]
    closed = lg.positions[-1]
    assert (closed.realized_pnl, closed.exit_price, closed.exit_reason) == (
        Decimal("0.31"),
        Decimal(96000),
        "decision",
    )
    assert lg.accounts[-2].account.balance == Decimal("80.260445")
    c1, c2 = lg.completed
    assert (c1.cycle_id, c1.timed_out, c2.cycle_id) == ("c1", False, "c2")
    assert c1.outcomes == (
        AgentOutcome(agent_id="momentum", status="applied", opened=2),
        AgentOutcome(agent_id="random", status="applied", opened=1, rejected=1),
    )
    assert await lg.count("SELECT count(*) FROM cycles WHERE status = 'completed'") == 2
    await eventually(lambda: lg.metric("arena_ledger_outbox_pending") == 0, what="outbox drained")
    # Metrics move just after the commit the events came from: wait, do not assume.
    await eventually(lambda: lg.metric("arena_ledger_verdicts_applied_total") == 4)
    await eventually(
        lambda: lg.metric("arena_ledger_equity_usd", agent="momentum") == pytest.approx(101.590445)
    )
    assert lg.metric("arena_ledger_rejections_total", code="margin_too_high") == 1

    await _check_queries(lg)


async def test_a_verdicts_account_event_is_the_account_as_stored(lg: Ledger) -> None:
    # The event is built from the book the verdict writes, before the statement that
    # writes both: it must be the stored row to the last digit (amounts keep their scale).
    await lg.start_cycle("c1", 1, {BTC: Decimal("95000.10")}, "momentum", "random")
    v = verdict("c1", "momentum", lg.clock.now(), approved(buy(BTC, "10.50", 3)))
    await lg.apply(v)
    event_id = f"account:{v.verdict_id}"
    await eventually(lambda: any(a.event_id == event_id for a in lg.accounts), what="event")
    (event,) = [a for a in lg.accounts if a.event_id == event_id]
    stored = {row.agent_id: row for row in await sql.accounts.accounts(lg.db)}
    assert event.account == account_view(stored["momentum"])
    assert event.account.model_dump_json() == account_view(stored["momentum"]).model_dump_json()


async def test_the_same_verdict_twice_changes_nothing(lg: Ledger) -> None:
    await lg.start_cycle("c1", 1, {BTC: Decimal(95000)}, "momentum", "random")
    v = verdict("c1", "momentum", lg.clock.now(), approved(buy(BTC, 10, 3)))
    subject = subjects.decision_verdict("momentum")
    await lg.publish(subject, v, v.verdict_id)
    await lg.wait_decided(v.verdict_id)
    before = await lg.account("momentum")
    outbox = await lg.count("SELECT count(*) FROM outbox")

    # Another message id, so JetStream keeps both; the snapshot again too.
    await lg.publish(subject, v, f"{v.verdict_id}:again")
    now = lg.clock.now()
    await lg.publish(
        subjects.MARKET_SNAPSHOT, snapshot(cycle_id="c1", at=now, prices={BTC: Decimal(1)}), "x"
    )

    def skipped() -> float:
        return lg.metric("arena_ledger_duplicates_skipped_total", consumer="ledger-books")

    await eventually(lambda: skipped() == 2, what="both second copies skipped")
    assert await lg.account("momentum") == before
    assert await lg.count("SELECT count(*) FROM outbox") == outbox
    assert await lg.count("SELECT count(*) FROM trades") == 1
    assert await lg.count("SELECT count(*) FROM positions") == 1
    assert await lg.count("SELECT count(*) FROM decisions") == 1
    assert await lg.count("SELECT count(*) FROM market_data WHERE price = 1") == 0
    assert lg.metric("arena_ledger_verdicts_applied_total") == 1


async def _momentum_in_c1(lg: Ledger, *results: tuple[Action, tuple[Reason, ...]]) -> Verdict:
    """Cycle c1 for momentum alone at BTC 95,000 and ETH 3,000, and a verdict on it."""
    await lg.start_cycle("c1", 1, {BTC: Decimal(95000), ETH: Decimal(3000)}, "momentum")
    return verdict("c1", "momentum", lg.clock.now(), *results)


async def test_the_ledger_refuses_and_records_what_it_cannot_apply(
    make_settings: MakeSettings, database_url: str
) -> None:
    async with ledger(make_settings, database_url, ARENA_INITIAL_BALANCE=25) as lg:
        now = lg.clock.now()
        v1 = await _momentum_in_c1(
            lg,
            approved(buy(BTC, 20, 2)),  # leaves 25 - 20 - fee: under 5
            approved(sell(ETH, 20, 2)),  # risk approved, but the balance no longer covers it
            approved(close("XRPUSDT")),
        )
        await lg.send_verdict(v1)
        await lg.start_cycle("c2", 2, {BTC: Decimal(95000)}, "momentum")
        v2 = verdict("c2", "momentum", now, approved(buy(BTC, 10, 2)))
        await lg.apply(v2)

        rows = await lg.db.fetch(
            "SELECT cycle_id, symbol, decision, reason_codes FROM rejected_decisions "
            "ORDER BY cycle_id, symbol"
        )
        assert [tuple(r) for r in rows] == [
            # Judged again on the ledger's books, the SELL breaks two limits: both are said.
            (
                "c1",
                ETH,
                "SELL",
                ["ledger_insufficient_balance", "ledger_margin_utilisation_exceeded"],
            ),
            ("c1", "XRPUSDT", "CLOSE", ["ledger_no_open_position"]),
            (
                "c2",
                BTC,
                "BUY",
                [
                    "ledger_position_already_open",
                    "ledger_insufficient_balance",
                    "ledger_margin_utilisation_exceeded",
                ],
            ),
        ]
        account = await lg.account("momentum")
        assert (account["open_positions"], account["total_trades"]) == (1, 1)
        results = await lg.db.fetchval("SELECT results FROM decisions WHERE cycle_id = 'c1'")
        assert '"outcome": "opened"' in results
        await eventually(
            lambda: (
                lg.metric("arena_ledger_rejections_total", code="ledger_position_already_open") == 1
            )
        )


async def test_an_approval_beyond_the_limits_is_refused_by_the_ledger(
    make_settings: MakeSettings, database_url: str
) -> None:
    """A verdict says "approved", but the ledger judges the limits again on its own books."""
    async with ledger(
        make_settings, database_url, ARENA_MAX_LEVERAGE=10, ARENA_SYMBOLS="BTCUSDT,ETHUSDT"
    ) as lg:
        forged = await _momentum_in_c1(
            lg,
            approved(buy(BTC, 10, 100)),
            approved(sell("DOGEUSDT", 10, 2)),  # not a traded symbol here
            approved(sell(ETH, 50, 2)),  # above the margin limit
        )
        await lg.publish(subjects.decision_verdict("momentum"), forged, forged.verdict_id)
        await lg.wait_decided(forged.verdict_id)
        rows = await lg.db.fetch(
            "SELECT symbol, reason_codes, rejection_reason FROM rejected_decisions ORDER BY symbol"
        )
        assert [(r["symbol"], r["reason_codes"]) for r in rows] == [
            (BTC, ["ledger_leverage_out_of_range"]),
            ("DOGEUSDT", ["ledger_unknown_symbol"]),
            (ETH, ["ledger_margin_out_of_range"]),
        ]
        assert "leverage 100x is outside [1, 10]" in rows[0]["rejection_reason"]
        assert await lg.count("SELECT count(*) FROM positions") == 0
        assert (await lg.account("momentum"))["balance"] == Decimal(100)


async def test_a_cycle_past_its_deadline_completes_with_missed_agents(lg: Ledger) -> None:
    now = lg.clock.now()
    started = cycle_started("c1", 1, now, ("momentum", "random"), deadline_s=10)
    await lg.publish(subjects.CYCLE_STARTED, started, "c1")
    await lg.publish(
        subjects.MARKET_SNAPSHOT,
        snapshot(cycle_id="c1", at=now, prices={BTC: Decimal(100)}),
        "c1",
    )
    v = verdict("c1", "momentum", now, approved(hold()))
    await lg.apply(v)
    # The completion check commits with the decision: random has not decided yet.
    assert await lg.db.fetchval("SELECT status FROM cycles") == "running"

    lg.clock.advance(10 + 6)  # past the deadline and the settle grace
    await eventually(lambda: lg.completed, what="the timed-out cycle completed")
    [done] = lg.completed
    assert done.timed_out
    assert done.outcomes == (
        AgentOutcome(agent_id="momentum", status="applied"),
        AgentOutcome(agent_id="random", status="missed"),
    )
    assert done.duration_seconds == 16
    assert await lg.db.fetchval("SELECT status FROM cycles") == "timed_out"

    late = verdict("c1", "random", now, approved(buy(BTC, 10, 2)))
    await lg.apply(late)
    codes = await lg.db.fetchval("SELECT reason_codes FROM rejected_decisions")
    assert codes == ["ledger_cycle_closed"]
    assert await lg.count("SELECT count(*) FROM positions") == 0
    assert len(lg.completed) == 1


async def test_a_malformed_verdict_is_dead_lettered_and_the_next_applied(lg: Ledger) -> None:
    dead = await lg.bus._nc.subscribe(subjects.dead_letter("ledger"))
    await lg.start_cycle("c1", 1, {BTC: Decimal(95000)}, "momentum")
    await publish_raw(lg.bus, subjects.decision_verdict("momentum"), b'{"verdict_id": 1}')
    v = verdict("c1", "momentum", lg.clock.now(), approved(buy(BTC, 10, 3)))
    await lg.apply(v)
    letter = await dead.next_msg(timeout=5)
    assert letter.data == b'{"verdict_id": 1}'
    assert await lg.count("SELECT count(*) FROM positions") == 1


async def test_ticks_mark_positions_and_llm_calls_are_recorded(lg: Ledger) -> None:
    now = lg.clock.now()
    await lg.start_cycle("c1", 1, {BTC: Decimal(95000)}, "momentum")
    v = verdict("c1", "momentum", now, approved(buy(BTC, 10, 3)))
    await lg.apply(v)

    await lg.publish(subjects.MARKET_TICK, tick("t1", now, {BTC: Decimal(97000)}), "t1")

    async def marked() -> bool:
        account = await lg.account("momentum")
        return bool(account["unrealized_pnl"] == Decimal("0.62"))

    await eventually(marked, what="the BTC long marked at 97,000")
    price = await lg.db.fetchval("SELECT current_price FROM positions")
    assert price == Decimal(97000)
    # The tick at 00:00 UTC is a funding time: the long pays 97,000 x 0.00031 x 0.0001.
    funding = await lg.db.fetchval("SELECT amount FROM funding_payments")
    assert funding == Decimal("0.003007")
    await eventually(
        lambda: (
            lg.metric("arena_ledger_equity_usd", agent="momentum")
            == pytest.approx(100 - 0.014725 + 0.62 - 0.003007)
        )
    )

    await lg.publish(subjects.llm_call("ghost"), llm_call("ghost", "k0", now), "k0")
    for call_id, ms in (("k1", "100"), ("k2", "300"), ("k3", "200")):
        call = llm_call("momentum", call_id, now, response_time_ms=ms)
        await lg.publish(subjects.llm_call("momentum"), call, call_id)
    await eventually(
        lambda: _equals(lg.count("SELECT count(*) FROM llm_api_calls"), 3),
        what="the LLM calls stored",
    )
    await eventually(
        lambda: lg.dead_lettered("ledger-llm-calls", "rejected") == 1,
        what="the call of an unknown agent dead-lettered",
    )
    # Per agent in the statistics: calls, tokens in and out, response time p50 and p95.
    stats = await lg.bus.ask(channels.LEDGER_QUERY_STATS, StatsQuery())
    used = {s.agent_id: s for s in stats.agents}
    momentum = used["momentum"]
    assert (momentum.llm_calls, momentum.prompt_tokens, momentum.completion_tokens) == (3, 300, 60)
    assert momentum.latency_p50_ms == 200.0
    assert momentum.latency_p95_ms == pytest.approx(290.0)  # 200 + 0.9 x (300 - 200)
    assert (used["random"].llm_calls, used["random"].latency_p50_ms) == (0, None)


async def test_model_text_postgres_refuses_is_stored_with_the_replacement_visible(
    lg: Ledger,
) -> None:
    now = lg.clock.now()
    await lg.start_cycle("c1", 1, {BTC: Decimal(95000), ETH: Decimal(3000)}, "momentum", "random")
    # Built with the contracts, as our agents do: the text is cleaned as it is made.
    built = verdict("c1", "momentum", now, approved(hold()), reasoning="calm\x00 then \ud83d cut")
    await lg.send_verdict(built)
    # Written by another program with Python's json, which escapes NUL as \u0000 and a
    # lone surrogate as \ud800: a strict JSON parser refuses the whole message for that.
    foreign = json.loads(
        verdict(
            "c1", "random", now, rejected(sell(ETH, 40, 2), ("margin_too_high", "too much"))
        ).to_bytes()
    )
    foreign["decision"]["reasoning"] = "NUL\x00 and a lone \ud800 here"
    foreign["decision"]["actions"][0]["invalidation"] = "close\udc00 above 3100"
    body = json.dumps(foreign).encode()
    assert b"\\u0000" in body and b"\\ud800" in body
    await publish_raw(lg.bus, subjects.decision_verdict("random"), body)
    await lg.wait_decided(built.verdict_id)
    await lg.wait_decided("c1:random")

    rows = await lg.db.fetch(
        "SELECT llm_id, reasoning, decision->>'reasoning' AS stored FROM decisions ORDER BY llm_id"
    )
    assert [tuple(r) for r in rows] == [
        ("momentum", "calm\ufffd then \ufffd cut", "calm\ufffd then \ufffd cut"),
        ("random", "NUL\ufffd and a lone \ufffd here", "NUL\ufffd and a lone \ufffd here"),
    ]
    rejection = await lg.db.fetchrow("SELECT reasoning, decision FROM rejected_decisions")
    assert tuple(rejection) == ("NUL\ufffd and a lone \ufffd here", "SELL")
    invalidation = await lg.db.fetchval(
        "SELECT decision->'actions'->0->>'invalidation' FROM decisions WHERE llm_id = 'random'"
    )
    assert invalidation == "close\ufffd above 3100"

    # ... and read back through the ledger's own query, as the gateway does.
    page = await lg.bus.request(
        channels.LEDGER_QUERY_DECISIONS.subject, DecisionsQuery(), Decisions
    )
    reasonings = {r.decision.agent_id: r.decision.reasoning for r in page.decisions}
    assert reasonings == {
        "momentum": "calm\ufffd then \ufffd cut",
        "random": "NUL\ufffd and a lone \ufffd here",
    }
    assert lg.dead_lettered("ledger-books", "malformed") == 0


async def _equals(count: Awaitable[int], expected: int) -> bool:
    return await count == expected
