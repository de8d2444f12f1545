"""``WS /ws``: ``connection``, then ``initial_data``, then the live events the hub relays."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import TypeVar

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from services.common.contracts import PositionsQuery
from services.gateway.agents import AgentBoard
from services.gateway.errors import UpstreamError
from services.gateway.hub import Client, Hub
from services.gateway.protocol import ConnectionData, EventType, InitialData
from services.gateway.reader import ArenaReader
from services.gateway.views import WsStats

log = logging.getLogger(__name__)

T = TypeVar("T")

CLOSE_TIMEOUT_SECONDS = 2.0


async def _part(name: str, ask: Awaitable[T], unavailable: dict[str, str]) -> T | None:
    try:
        return await ask
    except UpstreamError as exc:
        unavailable[name] = exc.detail
        return None


async def initial_data(reader: ArenaReader, board: AgentBoard, hub: Hub) -> InitialData:
    """The current state, from whichever services answer; the rest stays null."""
    unavailable: dict[str, str] = {}
    accounts, leaderboard, positions, scheduler, snapshot = await asyncio.gather(
        _part("accounts", reader.accounts(), unavailable),
        _part("leaderboard", reader.leaderboard(), unavailable),
        _part("positions", reader.positions(PositionsQuery(status="open")), unavailable),
        _part("scheduler_status", reader.scheduler_status(), unavailable),
        _part("market_snapshot", reader.snapshot(), unavailable),
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


class Session:
    """One client's connection: greeting, then the hub's messages until either side ends it."""

    def __init__(
        self,
        websocket: WebSocket,
        client: Client,
        hub: Hub,
        reader: ArenaReader,
        board: AgentBoard,
    ) -> None:
        self._ws = websocket
        self._client = client
        self._hub = hub
        self._reader = reader
        self._board = board

    async def run(self) -> None:
        # The client is registered before the state is read, so an event that happens
        # meanwhile waits in its queue and follows initial_data instead of being lost.
        hello = ConnectionData(client_id=self._client.id, server_time=self._hub.now())
        await self._send(self._hub.envelope(EventType.CONNECTION, hello))
        state = await initial_data(self._reader, self._board, self._hub)
        await self._send(self._hub.envelope(EventType.INITIAL_DATA, state))
        tasks = {
            asyncio.create_task(self._pump()),
            asyncio.create_task(self._listen()),
            asyncio.create_task(self._client.ended.wait()),
        }
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._client.ended.is_set():
            await self._close()

    async def _send(self, text: str) -> None:
        await self._ws.send_text(text)
        self._hub.record_sent()

    async def _pump(self) -> None:
        while True:
            await self._send(await self._client.queue.get())

    async def _listen(self) -> None:
        # Clients have nothing to say yet; reading is how a disconnect is noticed.
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await self._ws.receive_text()

    async def _close(self) -> None:
        client = self._client
        log.info("closing WebSocket client %s: %s", client.id, client.close_reason)
        # A client too slow to read may be too slow to take the close frame as well.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                self._ws.close(code=client.close_code, reason=client.close_reason[:120]),
                CLOSE_TIMEOUT_SECONDS,
            )


def router(hub: Hub, reader: ArenaReader, board: AgentBoard) -> APIRouter:
    api = APIRouter(tags=["ws"])

    @api.get("/ws/stats", response_model=WsStats, summary="WebSocket clients and messages")
    async def stats() -> WsStats:
        return WsStats(
            connected_clients=hub.client_count,
            messages_sent=hub.messages_sent,
            clients_dropped=hub.clients_dropped,
            queue_size=hub.queue_size,
        )

    @api.websocket("/ws")
    async def websocket(ws: WebSocket) -> None:
        await ws.accept()
        client = hub.connect()
        try:
            await Session(ws, client, hub, reader, board).run()
        except WebSocketDisconnect:
            pass  # the client left during the greeting
        finally:
            hub.disconnect(client)

    return api
