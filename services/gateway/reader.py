"""The gateway's view of the arena: request-reply to the services that own the state."""

from __future__ import annotations

from typing import TypeVar

from services.common import subjects
from services.common.bus import Bus, BusError
from services.common.contracts import (
    Accounts,
    AccountsQuery,
    Leaderboard,
    LeaderboardQuery,
    Message,
    SchedulerCommand,
    SchedulerStatus,
)
from services.gateway.errors import UpstreamError

LEDGER = "ledger"
MARKET = "market"

R = TypeVar("R", bound=Message)


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

    async def accounts(self) -> Accounts:
        return await self._ask(LEDGER, subjects.LEDGER_QUERY_ACCOUNTS, AccountsQuery(), Accounts)

    async def leaderboard(self) -> Leaderboard:
        return await self._ask(
            LEDGER, subjects.LEDGER_QUERY_LEADERBOARD, LeaderboardQuery(), Leaderboard
        )

    async def scheduler_status(self) -> SchedulerStatus:
        return await self._ask(
            MARKET,
            subjects.SCHEDULER_STATUS,
            SchedulerCommand(requested_by=self._requested_by),
            SchedulerStatus,
        )

    async def _ask(self, service: str, subject: str, request: Message, reply_type: type[R]) -> R:
        try:
            return await self._bus.request(subject, request, reply_type, self._timeout)
        except BusError as exc:
            raise UpstreamError.from_bus(service, exc) from exc
