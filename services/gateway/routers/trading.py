"""``/trading/*`` and ``/audit/verify``: the ledger's state, and the agents' heartbeats."""

from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response

from services.common.clock import Clock
from services.common.contracts import (
    MAX_EQUITY_POINTS,
    Accounts,
    Decisions,
    EquityQuery,
    EquitySeries,
    Leaderboard,
    Portfolio,
    Positions,
    PositionsQuery,
    Stats,
    Trades,
    VerifyReport,
)
from services.gateway.agents import AgentBoard
from services.gateway.cache import ReadCache, json_response, serialised
from services.gateway.errors import ERROR_RESPONSES, NotFoundError, not_found, part_of
from services.gateway.reader import ArenaReader
from services.gateway.relay import ACCOUNTS_KEY, EQUITY_KEY, LEADERBOARD_KEY
from services.gateway.responses import AgentsView, TradingStatus
from services.gateway.routers.paging import Limit, Offset, page

AGENT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
LlmId = Annotated[str, Path(pattern=AGENT_PATTERN, description="The agent's id, e.g. momentum.")]
AgentFilter = Annotated[
    str | None, Query(pattern=AGENT_PATTERN, description="Only this agent's rows.")
]
NOT_FOUND = not_found("No such agent.")


def router(reader: ArenaReader, board: AgentBoard, clock: Clock, cache: ReadCache) -> APIRouter:
    api = APIRouter(prefix="/trading", tags=["trading"], responses=ERROR_RESPONSES)
    one_agent = partial(api.get, responses=NOT_FOUND)  # a route about one agent, 404 if unknown

    def known(agent_id: str) -> str:
        if not board.knows(agent_id):
            raise NotFoundError(
                f"unknown agent {agent_id!r}; known agents: {', '.join(board.known_ids)}"
            )
        return agent_id

    @api.get("/status", response_model=TradingStatus, summary="Scheduler, accounts and agents")
    async def status() -> TradingStatus:
        unavailable: dict[str, str] = {}
        scheduler, accounts = await asyncio.gather(
            part_of("scheduler", reader.scheduler_status(), unavailable),
            part_of("accounts", reader.accounts(), unavailable),
        )
        agents = board.states(clock.now())
        return TradingStatus(
            scheduler=scheduler,
            market_source=scheduler.source if scheduler else None,
            accounts=len(accounts.accounts) if accounts else None,
            total_equity=sum((a.equity for a in accounts.accounts), Decimal(0))
            if accounts
            else None,
            agents=agents,
            disabled_agents=tuple(a for a in agents if a.status == "disabled"),
            unavailable=unavailable,
        )

    @api.get("/agents", response_model=AgentsView, summary="The line-up with heartbeat status")
    async def agents() -> AgentsView:
        return AgentsView(agents=board.states(clock.now()))

    @api.get("/accounts", response_model=Accounts, summary="Every agent's account")
    async def accounts() -> Response:
        return json_response(await cache.get(ACCOUNTS_KEY, lambda: serialised(reader.accounts())))

    @one_agent(
        "/accounts/{llm_id}",
        response_model=Portfolio,
        summary="One agent's account and open positions",
    )
    async def account(llm_id: LlmId) -> Portfolio:
        return await reader.portfolio(known(llm_id))

    @api.get("/positions", response_model=Positions, summary="Positions of every agent")
    async def positions(
        limit: Limit = 50,
        offset: Offset = 0,
        status: Literal["open", "closed", "all"] = "open",
    ) -> Positions:
        query = PositionsQuery(status=status, page=page(limit, offset))
        return await reader.positions(query)

    @one_agent("/positions/{llm_id}", response_model=Positions, summary="One agent's positions")
    async def agent_positions(
        llm_id: LlmId,
        limit: Limit = 50,
        offset: Offset = 0,
        status: Literal["open", "closed", "all"] = "open",
    ) -> Positions:
        query = PositionsQuery(agent_id=known(llm_id), status=status, page=page(limit, offset))
        return await reader.positions(query)

    @api.get("/trades", response_model=Trades, summary="Executions of every agent, newest first")
    async def trades(limit: Limit = 50, offset: Offset = 0) -> Trades:
        return await reader.trades(None, page(limit, offset))

    @one_agent("/trades/{llm_id}", response_model=Trades, summary="One agent's trades")
    async def agent_trades(llm_id: LlmId, limit: Limit = 50, offset: Offset = 0) -> Trades:
        return await reader.trades(known(llm_id), page(limit, offset))

    @api.get("/leaderboard", response_model=Leaderboard, summary="Agents in rank order")
    async def leaderboard() -> Response:
        body = await cache.get(LEADERBOARD_KEY, lambda: serialised(reader.leaderboard()))
        return json_response(body)

    @api.get(
        "/decisions",
        response_model=Decisions,
        summary="Decisions with reasoning, parse errors and risk's results, newest first",
    )
    async def decisions(limit: Limit = 50, offset: Offset = 0) -> Decisions:
        return await reader.decisions(None, page(limit, offset))

    @one_agent("/decisions/{llm_id}", response_model=Decisions, summary="One agent's decisions")
    async def agent_decisions(llm_id: LlmId, limit: Limit = 50, offset: Offset = 0) -> Decisions:
        return await reader.decisions(known(llm_id), page(limit, offset))

    @api.get(
        "/equity",
        response_model=EquitySeries,
        summary="Equity time series per agent, at most `points` per agent",
        description="With `format=columns` the answer is an EquityColumns: the same points, "
        "per agent its times and equities as two lists.",
    )
    async def equity(
        agent_id: AgentFilter = None,
        since: Annotated[
            datetime | None, Query(description="Only snapshots at or after this time.")
        ] = None,
        limit: Annotated[
            int, Query(ge=1, le=20000, description="At most this many points in all, newest kept.")
        ] = 2000,
        points: Annotated[
            int,
            Query(
                ge=2,
                le=MAX_EQUITY_POINTS,
                description="At most this many points per agent: a longer history is cut "
                "into this many equal time spans and the last snapshot of each is returned.",
            ),
        ] = 1000,
        format: Annotated[
            Literal["points", "columns"],
            Query(
                description="points: a list of points, each with every figure; columns: per "
                "agent, its times and equities as two lists (the same points, compact)."
            ),
        ] = "points",
    ) -> Response:
        query = EquityQuery(
            agent_id=known(agent_id) if agent_id else None,
            since=since,
            limit=limit,
            points=points,
            format=format,
        )
        # Every dashboard asks the same on each completed cycle: one ledger answer for
        # all, until an event says the books moved (or the cache's TTL passes).
        key = f"{EQUITY_KEY}?{query.model_dump_json()}"
        return json_response(await cache.get(key, lambda: reader.equity(query)))

    @api.get("/stats", response_model=Stats, summary="Per-agent statistics")
    async def stats() -> Stats:
        return await reader.stats()

    return api


def audit_router(reader: ArenaReader) -> APIRouter:
    api = APIRouter(prefix="/audit", tags=["audit"], responses=ERROR_RESPONSES)

    @api.get(
        "/verify",
        response_model=VerifyReport,
        summary="Recompute every account from its rows and report any difference",
    )
    async def verify(
        full: Annotated[
            bool,
            Query(
                description="Check the whole decision chain and every proposal, not only "
                "what came after the last clean check."
            ),
        ] = False,
    ) -> VerifyReport:
        return await reader.verify(full)

    return api
