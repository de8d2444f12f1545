"""``/trading/*``: accounts and leaderboard, as the ledger reports them."""

from __future__ import annotations

from fastapi import APIRouter

from services.common.contracts import Accounts, Leaderboard
from services.gateway.errors import ERROR_RESPONSES
from services.gateway.reader import ArenaReader


def router(reader: ArenaReader) -> APIRouter:
    api = APIRouter(prefix="/trading", tags=["trading"], responses=ERROR_RESPONSES)

    @api.get("/accounts", response_model=Accounts, summary="Every agent's account")
    async def accounts() -> Accounts:
        return await reader.accounts()

    @api.get("/leaderboard", response_model=Leaderboard, summary="Agents in rank order")
    async def leaderboard() -> Leaderboard:
        return await reader.leaderboard()

    return api
