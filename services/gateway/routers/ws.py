"""``WS /ws``: ``connection``, then ``initial_data``, then the live events the hub relays.

Before a client is served its page's origin is checked and a place is taken in the hub;
every message to it must be taken by its socket within the send timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.responses import PlainTextResponse

from services.common.contracts import PositionsQuery
from services.common.tasks import cancel_and_wait
from services.gateway.agents import AgentBoard
from services.gateway.errors import part_of
from services.gateway.hub import (
    CLOSE_POLICY_VIOLATION,
    CLOSE_TRY_AGAIN_LATER,
    Client,
    Drop,
    Hub,
)
from services.gateway.metrics import DROPPED_SEND_TIMEOUT
from services.gateway.origin_policy import OriginPolicy
from services.gateway.protocol import ConnectionData, EventType, InitialData
from services.gateway.reader import ArenaReader
from services.gateway.responses import WsStats

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_SECONDS = 2.0
ORIGIN_REFUSED = "this page's origin may not open /ws (see ARENA_WS_ALLOWED_ORIGINS)"
DENIAL_EXTENSION = "websocket.http.response"


class SlowClient(Exception):
    """The client's socket did not take a message in time; the hub has dropped it."""


async def initial_data(reader: ArenaReader, board: AgentBoard, hub: Hub) -> InitialData:
    """The current state, from whichever services answer; the rest stays null."""
    unavailable: dict[str, str] = {}
    accounts, leaderboard, positions, scheduler, snapshot = await asyncio.gather(
        part_of("accounts", reader.accounts(), unavailable),
        part_of("leaderboard", reader.leaderboard(), unavailable),
        part_of("positions", reader.positions(PositionsQuery(status="open")), unavailable),
        part_of("scheduler_status", reader.scheduler_status(), unavailable),
        part_of("market_snapshot", reader.snapshot(), unavailable),
    )
    return InitialData(
        accounts=accounts.accounts if accounts is not None else None,
        leaderboard=leaderboard.entries if leaderboard is not None else None,
        positions=positions.positions if positions is not None else None,
        scheduler_status=scheduler,
        market_snapshot=snapshot.snapshot if snapshot is not None else None,
        agents=board.states(hub.now()),
        unavailable=unavailable,
    )


@dataclass(eq=False)
class Session:
    """One client's connection: greeting, then the hub's messages until either side ends it."""

    ws: WebSocket
    client: Client
    hub: Hub
    reader: ArenaReader
    board: AgentBoard

    async def run(self) -> None:
        # The client is registered before the state is read, so an event that happens
        # meanwhile waits in its queue and follows initial_data instead of being lost.
        hello = ConnectionData(client_id=self.client.id, server_time=self.hub.now())
        try:
            await self._send(self.hub.envelope(EventType.CONNECTION, hello))
            state = await initial_data(self.reader, self.board, self.hub)
            await self._send(self.hub.envelope(EventType.INITIAL_DATA, state))
        except SlowClient:
            await self._close()
            return
        tasks = {
            asyncio.create_task(self._pump()),
            asyncio.create_task(self._listen()),
            asyncio.create_task(self.client.ended.wait()),
        }
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_and_wait(tasks)
        if self.client.ended.is_set():
            await self._close()

    async def _send(self, text: str) -> None:
        # The socket takes a message once its buffers have room; a reader that stopped
        # reading never makes room, and would hold its queue and the frame forever.
        timeout = self.hub.limits.send_timeout
        try:
            await asyncio.wait_for(self.ws.send_text(text), timeout)
        except TimeoutError:
            reason = f"too slow: a message was not taken within {timeout:g} s"
            self.hub.drop(self.client, Drop(DROPPED_SEND_TIMEOUT, reason))
            raise SlowClient(reason) from None
        self.hub.record_sent()

    async def _pump(self) -> None:
        with contextlib.suppress(SlowClient):
            while True:
                await self._send(await self.client.next())

    async def _listen(self) -> None:
        # Clients have nothing to say yet; reading is how a disconnect is noticed.
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await self.ws.receive_text()

    async def _close(self) -> None:
        client = self.client
        log.info("closing WebSocket client %s: %s", client.id, client.close_reason)
        # A client too slow to read may be too slow to take the close frame as well.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                self.ws.close(code=client.close_code, reason=client.close_reason[:120]),
                CLOSE_TIMEOUT_SECONDS,
            )


async def _refuse_origin(ws: WebSocket) -> None:
    """HTTP 403 before the upgrade, with the reason as text where the server allows it."""
    if DENIAL_EXTENSION in ws.scope.get("extensions", {}):
        await ws.send_denial_response(PlainTextResponse(ORIGIN_REFUSED, status_code=403))
    else:
        await ws.close(code=CLOSE_POLICY_VIOLATION, reason=ORIGIN_REFUSED)


async def _refuse_full(ws: WebSocket, reason: str) -> None:
    """Accept, then close 1013 with the reason: browsers show a close reason, not a 503."""
    with contextlib.suppress(Exception):  # the client may be gone already
        async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
            await ws.accept()
            await ws.close(code=CLOSE_TRY_AGAIN_LATER, reason=reason[:120])


def router(hub: Hub, reader: ArenaReader, board: AgentBoard, origins: OriginPolicy) -> APIRouter:
    api = APIRouter(tags=["ws"])

    @api.get("/ws/stats", response_model=WsStats, summary="WebSocket clients and messages")
    async def stats() -> WsStats:
        return WsStats(
            connected_clients=hub.client_count,
            max_clients=hub.limits.max_clients,
            messages_sent=hub.messages_sent,
            clients_dropped=hub.clients_dropped,
            clients_refused=hub.clients_refused,
            origins_refused=hub.origins_refused,
            queue_size=hub.limits.queue_size,
            client_buffer_bytes=hub.limits.buffer_bytes,
            send_timeout_seconds=hub.limits.send_timeout,
        )

    @api.websocket("/ws")
    async def websocket(ws: WebSocket) -> None:
        origin = ws.headers.get("origin")
        if not origins.allows(origin):
            hub.refuse_origin()
            log.info("refused a WebSocket from origin %r: not allowed", origin)
            await _refuse_origin(ws)
            return
        client = hub.connect()  # before accepting, so the limit holds however many arrive
        if client is None:
            log.info("refused a WebSocket client: %s", hub.full_reason)
            await _refuse_full(ws, hub.full_reason)
            return
        try:
            await ws.accept()
            await Session(ws, client, hub, reader, board).run()
        except WebSocketDisconnect:
            pass  # the client left during the greeting
        finally:
            hub.disconnect(client)

    return api
