"""The gateway's view of the arena: request-reply to the services that own the state."""

from __future__ import annotations

from typing import TypeVar

from services.common import channels
from services.common.bus import Bus, BusError
from services.common.channels import Request
from services.common.contracts import (
    Accounts,
    AccountsQuery,
    Decisions,
    DecisionsQuery,
    EquityQuery,
    Leaderboard,
    LeaderboardQuery,
    Message,
    Page,
    Portfolio,
    PortfolioQuery,
    Positions,
    PositionsQuery,
    Prices,
    PricesQuery,
    SchedulerCommand,
    SchedulerStatus,
    SnapshotQuery,
    SnapshotReply,
    Stats,
    StatsQuery,
    SymbolQuery,
    SymbolReply,
    Trades,
    TradesQuery,
    VerifyQuery,
    VerifyReport,
)
from services.gateway.errors import UpstreamError

Q = TypeVar("Q", bound=Message)
R = TypeVar("R", bound=Message)


# The start of each answer /trading/equity passes on; the rest is the ledger's as it wrote it.
_EQUITY_OPENINGS = {
    "points": b'{"schema_version":1,"points":[',
    "columns": b'{"schema_version":1,"agents":[',
}


class ArenaReader:
    """Asks the ledger and the market; every failure becomes an :class:`UpstreamError`
    naming the service that failed. The gateway never touches the database."""

    def __init__(self, bus: Bus, timeout: float, requested_by: str = "gateway") -> None:
        self._bus = bus
        self._timeout = timeout
        self._requested_by = requested_by

    @property
    def nats_connected(self) -> bool:
        return self._bus.connected

    # ------------------------------------------------------------ ledger

    async def accounts(self) -> Accounts:
        return await self._ask(channels.LEDGER_QUERY_ACCOUNTS, AccountsQuery())

    async def portfolio(self, agent_id: str) -> Portfolio:
        return await self._ask(channels.LEDGER_QUERY_PORTFOLIO, PortfolioQuery(agent_id=agent_id))

    async def leaderboard(self) -> Leaderboard:
        return await self._ask(channels.LEDGER_QUERY_LEADERBOARD, LeaderboardQuery())

    async def positions(self, query: PositionsQuery) -> Positions:
        return await self._ask(channels.LEDGER_QUERY_POSITIONS, query)

    async def trades(self, agent_id: str | None, page: Page) -> Trades:
        query = TradesQuery(agent_id=agent_id, page=page)
        return await self._ask(channels.LEDGER_QUERY_TRADES, query)

    async def decisions(self, agent_id: str | None, page: Page) -> Decisions:
        query = DecisionsQuery(agent_id=agent_id, page=page)
        return await self._ask(channels.LEDGER_QUERY_DECISIONS, query)

    async def equity(self, query: EquityQuery) -> bytes:
        """The series as the ledger wrote it, one answer for every agent asked (in parts
        when it is over NATS's message size). Only the envelope is checked: the ledger
        owns the books, and reading thousands of amounts again costs more than the query."""
        channel = channels.LEDGER_QUERY_EQUITY
        try:
            data = await self._bus.request_bytes(channel.subject, query, self._timeout)
        except BusError as exc:
            raise UpstreamError.from_bus(channel.server, exc) from exc
        if data.startswith(_EQUITY_OPENINGS[query.format]) and data.endswith(b"]}"):
            return data
        error = Bus.reply_error(channel.subject, data)
        raise UpstreamError.from_bus(channel.server, error) from error

    async def stats(self) -> Stats:
        return await self._ask(channels.LEDGER_QUERY_STATS, StatsQuery())

    async def verify(self, full: bool = False) -> VerifyReport:
        return await self._ask(channels.LEDGER_QUERY_VERIFY, VerifyQuery(full=full))

    # ------------------------------------------------------------ market

    async def snapshot(self) -> SnapshotReply:
        return await self._ask(channels.MARKET_QUERY_SNAPSHOT, SnapshotQuery())

    async def prices(self) -> Prices:
        return await self._ask(channels.MARKET_QUERY_PRICES, PricesQuery())

    async def symbol(self, symbol: str) -> SymbolReply:
        return await self._ask(channels.MARKET_QUERY_SYMBOL, SymbolQuery(symbol=symbol))

    async def scheduler_status(self) -> SchedulerStatus:
        return await self._scheduler(channels.SCHEDULER_STATUS)

    async def scheduler_trigger(self, requested_by: str) -> SchedulerStatus:
        return await self._scheduler(channels.SCHEDULER_TRIGGER, requested_by)

    async def scheduler_pause(self, requested_by: str) -> SchedulerStatus:
        return await self._scheduler(channels.SCHEDULER_PAUSE, requested_by)

    async def scheduler_resume(self, requested_by: str) -> SchedulerStatus:
        return await self._scheduler(channels.SCHEDULER_RESUME, requested_by)

    async def _scheduler(
        self,
        channel: Request[SchedulerCommand, SchedulerStatus],
        requested_by: str | None = None,
    ) -> SchedulerStatus:
        command = SchedulerCommand(requested_by=requested_by or self._requested_by)
        return await self._ask(channel, command)

    async def _ask(self, channel: Request[Q, R], request: Q) -> R:
        """The answer of the entry's server; a failure names that service."""
        try:
            return await self._bus.ask(channel, request, self._timeout)
        except BusError as exc:
            raise UpstreamError.from_bus(channel.server, exc) from exc
