"""The hosted agents' portfolios: one question to the ledger a cycle for all of them."""

from __future__ import annotations

import asyncio

import pytest

from services.agent.portfolios import SharedPortfolios
from services.common import channels
from services.common.bus import Bus, BusError, Unavailable
from services.common.contracts import Portfolios, PortfoliosQuery
from tests.agent.standins import serve_ledger
from tests.builders import portfolio

HOSTED = ("momentum", "random", "mean-reversion")
TIMEOUT = 2.0


def shared(bus: Bus, fresh_for: float = 60.0) -> SharedPortfolios:
    async def ask(query: PortfoliosQuery, timeout: float) -> Portfolios:
        return await bus.ask(channels.LEDGER_QUERY_PORTFOLIOS, query, timeout=timeout)

    return SharedPortfolios(HOSTED, ask, shared_seconds=fresh_for)


async def test_the_hosted_agents_share_one_question_a_cycle(bus: Bus) -> None:
    asked = await serve_ledger(bus)
    portfolios = shared(bus)

    for cycle in ("c1", "c2"):
        found = await asyncio.gather(
            *(portfolios.portfolio(agent, cycle, TIMEOUT) for agent in HOSTED)
        )
        assert [p.account.agent_id for p in found] == list(HOSTED)
    # The first to ask for a cycle's asked for all three; the others took theirs.
    assert asked == [HOSTED, HOSTED]
    # A later asker of the same cycle takes its own from the cycle's question too.
    later = shared(bus)
    await later.portfolio("momentum", "c3", TIMEOUT)
    assert (await later.portfolio("random", "c3", TIMEOUT)).account.agent_id == "random"
    assert asked[2:] == [HOSTED]


async def test_an_agent_asking_again_for_a_cycle_asks_afresh_for_itself(bus: Bus) -> None:
    asked = await serve_ledger(bus)
    portfolios = shared(bus)
    await portfolios.portfolio("momentum", "c1", TIMEOUT)
    # Its snapshot delivered again: the books may have moved since (its verdict): not the
    # answer already taken.
    await portfolios.portfolio("momentum", "c1", TIMEOUT)
    assert asked == [HOSTED, ("momentum",)]


async def test_an_answer_no_longer_fresh_is_not_handed_out(bus: Bus) -> None:
    asked = await serve_ledger(bus)
    portfolios = shared(bus, fresh_for=0.0)
    await portfolios.portfolio("momentum", "c1", TIMEOUT)
    # A sibling asking after the answer went stale (ticks may have moved its books since):
    # a fresh question, not the old answer.
    await portfolios.portfolio("random", "c1", TIMEOUT)
    assert asked == [HOSTED, HOSTED]


async def test_a_failed_question_is_asked_again_by_each_asker(bus: Bus) -> None:
    portfolios = shared(bus)
    # No ledger answers: every waiting asker gets the failure.
    failures = await asyncio.gather(
        *(portfolios.portfolio(agent, "c1", 0.2) for agent in HOSTED), return_exceptions=True
    )
    assert all(isinstance(f, Unavailable) for f in failures)
    asked = await serve_ledger(bus)
    # The ledger back: each asker asks again, for itself.
    assert (await portfolios.portfolio("random", "c1", TIMEOUT)).account.agent_id == "random"
    assert asked == [("random",)]


async def test_an_agent_without_an_account_gets_a_clear_error(bus: Bus) -> None:
    async def answer(query: PortfoliosQuery) -> Portfolios:
        # The ledger leaves out an agent it has no account for.
        return Portfolios(portfolios=tuple(portfolio(agent_id=a) for a in query.agent_ids[1:]))

    await bus.serve(channels.LEDGER_QUERY_PORTFOLIOS.subject, PortfoliosQuery, answer)
    portfolios = shared(bus)
    with pytest.raises(BusError, match="no account for agent 'momentum'"):
        await portfolios.portfolio("momentum", "c1", TIMEOUT)
    assert (await portfolios.portfolio("random", "c1", TIMEOUT)).account.agent_id == "random"
