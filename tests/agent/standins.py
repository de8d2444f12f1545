"""What the agent tests stand in for: the ledger's portfolio answers, the market's snapshots."""

from __future__ import annotations

from datetime import timedelta

from services.common import channels, subjects
from services.common.bus import Bus
from services.common.clock import ManualClock
from services.common.contracts import (
    Indicators,
    MarketSnapshot,
    Portfolio,
    Portfolios,
    PortfoliosQuery,
)
from tests.builders import portfolio, snapshot, symbol_snapshot

# BTC in an uptrend: the momentum baseline buys it.
UP = Indicators(ema_20=51_000, ema_50=50_000, atr_14=400)


async def serve_ledger(bus: Bus, book: Portfolio | None = None) -> list[tuple[str, ...]]:
    """Answer every portfolio question with ``book`` for each agent asked about (an empty
    book by default); the agents each question asked about, in order."""
    asked: list[tuple[str, ...]] = []

    async def answer(query: PortfoliosQuery) -> Portfolios:
        asked.append(query.agent_ids)
        books = (
            portfolio(agent_id=a) if book is None else of_agent(book, a) for a in query.agent_ids
        )
        return Portfolios(portfolios=tuple(books))

    await bus.serve(channels.LEDGER_QUERY_PORTFOLIOS.subject, PortfoliosQuery, answer)
    return asked


def of_agent(book: Portfolio, agent_id: str) -> Portfolio:
    """``book`` as ``agent_id``'s."""
    account = book.account.model_copy(update={"agent_id": agent_id})
    return book.model_copy(update={"account": account})


def market(cycle_id: str, clock: ManualClock, seconds_left: float = 60) -> MarketSnapshot:
    """A snapshot of BTC going up, its deadline ``seconds_left`` after the clock's now."""
    return snapshot(
        symbol_snapshot("BTCUSDT", indicators=UP),
        cycle_id=cycle_id,
        deadline=clock.now() + timedelta(seconds=seconds_left),
    )


async def publish(bus: Bus, snap: MarketSnapshot) -> None:
    await bus.publish(subjects.MARKET_SNAPSHOT, snap, natural_id=snap.cycle_id)
