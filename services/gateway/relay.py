"""Which NATS events the WebSocket relays, and the one set of subscriptions that feeds the hub."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from services.common import channels
from services.common.bus import Bus
from services.common.channels import Event
from services.common.contracts import Decision, Heartbeat, Message
from services.gateway.agents import AgentBoard
from services.gateway.cache import ReadCache
from services.gateway.hub import Hub
from services.gateway.protocol import DecisionShown, EventType

# Cache keys of the hot reads (see routers) and the events that make them stale.
LEADERBOARD_KEY = "leaderboard"
ACCOUNTS_KEY = "accounts"
PRICES_KEY = "prices"
EQUITY_KEY = "equity"  # one entry per query: "equity?<query>"
LEDGER_KEYS = (LEADERBOARD_KEY, ACCOUNTS_KEY, EQUITY_KEY)


@dataclass(frozen=True)
class Relay:
    channel: Event[Any]  # the subject subscribed to and its message type
    event: EventType
    invalidates: tuple[str, ...] = ()
    # On per-agent subjects published by agents: whom the message claims to speak for.
    speaker: Callable[[Any], str] | None = None
    # What of the message clients get, when not all of it.
    shown: Callable[[Any], BaseModel] | None = None


def _decision_agent(decision: Decision) -> str:
    return decision.agent_id


def _beat_agent(beat: Heartbeat) -> str:
    return beat.agent_id


RELAYS: tuple[Relay, ...] = (
    Relay(channels.MARKET_SNAPSHOT, EventType.MARKET_SNAPSHOT, (PRICES_KEY,)),
    Relay(channels.CYCLE_STARTED, EventType.CYCLE_START),
    Relay(
        channels.DECISION_PROPOSED,
        EventType.LLM_DECISION,
        speaker=_decision_agent,
        shown=DecisionShown.of,
    ),
    Relay(channels.CYCLE_COMPLETED, EventType.CYCLE_COMPLETE, LEDGER_KEYS),
    Relay(channels.LEDGER_POSITION, EventType.POSITION_UPDATE, LEDGER_KEYS),
    Relay(channels.LEDGER_ACCOUNT, EventType.ACCOUNT_UPDATE, LEDGER_KEYS),
)


def _unheard(hub: Hub, cache: ReadCache, relay: Relay) -> Callable[[], bool]:
    """With no client connected an event only makes cached reads stale: it is not decoded
    (a replay publishes dozens a second, a month's snapshots among them)."""

    def unheard() -> bool:
        if hub.client_count:
            return False
        cache.invalidate(*relay.invalidates)
        return True

    return unheard


def _forward(hub: Hub, cache: ReadCache, relay: Relay) -> Callable[[Message], Awaitable[None]]:
    async def forward(message: Message) -> None:
        # Stale answers go first, so a client that refetches on this event sees the change.
        cache.invalidate(*relay.invalidates)
        hub.broadcast(relay.event, relay.shown(message) if relay.shown else message)
        # The NATS client hands a burst to this callback without yielding: let the
        # sessions send this message before the next is queued, or a burst would sit in
        # every queue at once and count against each client's bounds.
        await asyncio.sleep(0)

    return forward


async def subscribe_relays(
    bus: Bus, hub: Hub, cache: ReadCache, relays: tuple[Relay, ...] = RELAYS
) -> None:
    """Subscribe once per relayed subject, however many clients connect.

    Core (non-durable) subscriptions: a browser that was not connected has no use for
    events it missed; it gets the current state in ``initial_data`` instead. A malformed
    message is dead-lettered by the bus and the next one is relayed. While no client is
    connected events are not decoded, only make the cache's answers stale.
    """
    for relay in relays:
        channel = relay.channel
        await bus.subscribe_core(
            channel.subject,
            channel.message,
            _forward(hub, cache, relay),
            speaker=relay.speaker,
            unheard=_unheard(hub, cache, relay),
        )

    # A tick only makes the prices stale (they are read afresh): it is not decoded.
    await bus.subscribe_arrivals(
        channels.MARKET_TICK.subject, functools.partial(cache.invalidate, PRICES_KEY)
    )


async def subscribe_heartbeats(bus: Bus, board: AgentBoard, hub: Hub) -> None:
    """Keep the agent board current; tell clients when an agent's status changes."""

    async def on_heartbeat(beat: Heartbeat) -> None:
        if board.record(beat):
            hub.broadcast(EventType.AGENT_STATUS, beat)

    beats = channels.AGENT_HEARTBEAT
    await bus.subscribe_core(beats.subject, beats.message, on_heartbeat, speaker=_beat_agent)
