"""Which NATS events the WebSocket relays, and the one set of subscriptions that feeds the hub."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from services.common import subjects
from services.common.bus import Bus
from services.common.contracts import (
    AccountEvent,
    CycleCompleted,
    CycleStarted,
    Decision,
    Message,
    PositionEvent,
)
from services.gateway.hub import Hub
from services.gateway.protocol import EventType


@dataclass(frozen=True)
class Relay:
    subject: str
    model: type[Message]
    event: EventType


RELAYS: tuple[Relay, ...] = (
    Relay(subjects.CYCLE_STARTED, CycleStarted, EventType.CYCLE_START),
    Relay(subjects.DECISION_PROPOSED_ALL, Decision, EventType.LLM_DECISION),
    Relay(subjects.CYCLE_COMPLETED, CycleCompleted, EventType.CYCLE_COMPLETE),
    Relay(subjects.LEDGER_POSITION_ALL, PositionEvent, EventType.POSITION_UPDATE),
    Relay(subjects.LEDGER_ACCOUNT_ALL, AccountEvent, EventType.ACCOUNT_UPDATE),
)


def _forward(hub: Hub, event: EventType) -> Callable[[Message], Awaitable[None]]:
    async def forward(message: Message) -> None:
        hub.broadcast(event, message)

    return forward


async def subscribe_relays(bus: Bus, hub: Hub, relays: tuple[Relay, ...] = RELAYS) -> None:
    """Subscribe once per relayed subject, however many clients connect.

    Core (non-durable) subscriptions: a browser that was not connected has no use for
    events it missed; it gets the current state in ``initial_data`` instead. A malformed
    message is dead-lettered by the bus and the next one is relayed.
    """
    for relay in relays:
        await bus.subscribe_core(relay.subject, relay.model, _forward(hub, relay.event))
