"""``/seasons``: the season reports of ``ARENA_SEASONS_DIR``, read-only like every GET."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, HTTPException
from fastapi import Path as PathParam
from fastapi.responses import FileResponse

from services.gateway.errors import ErrorDetail, NotFoundError
from services.gateway.seasons import (
    NAME_RULE,
    PAGE_FILE,
    REPORT_FILE,
    InvalidName,
    SeasonFileMissing,
    SeasonShelf,
    SeasonSummary,
)

# The report page is generated from agent ids and line-up text: it may style itself and
# show the season's images, and run nothing.
REPORT_PAGE_POLICY = (
    "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)

SeasonId = Annotated[str, PathParam(description=f"The season's folder name: {NAME_RULE}.")]
ChartName = Annotated[str, PathParam(description=f"The chart file name without .png: {NAME_RULE}.")]
ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorDetail, "description": "The name is not a season's or a chart's."},
    404: {"model": ErrorDetail, "description": "No such season, or not this file in it."},
}


def router(shelf: SeasonShelf) -> APIRouter:
    api = APIRouter(prefix="/seasons", tags=["seasons"])

    async def located(find: Callable[..., Path], *names: str) -> Path:
        try:
            return await anyio.to_thread.run_sync(find, *names)
        except InvalidName as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None
        except SeasonFileMissing as exc:
            raise NotFoundError(str(exc)) from None

    @api.get(
        "",
        response_model=list[SeasonSummary],
        summary="The seasons served, newest report first (empty when none are)",
    )
    async def seasons() -> list[SeasonSummary]:
        return await anyio.to_thread.run_sync(shelf.summaries)

    @api.get(
        "/{season_id}/report",
        summary="A season's report.json as written (docs/seasons.md#report)",
        response_class=FileResponse,
        responses={200: {"content": {"application/json": {}}}, **ERRORS},
    )
    async def report(season_id: SeasonId) -> FileResponse:
        path = await located(shelf.file, season_id, REPORT_FILE)
        return FileResponse(path, media_type="application/json")

    @api.get(
        "/{season_id}/report.html",
        summary="A season's report page, when it has one",
        response_class=FileResponse,
        responses={200: {"content": {"text/html": {}}}, **ERRORS},
    )
    async def page(season_id: SeasonId) -> FileResponse:
        path = await located(shelf.file, season_id, PAGE_FILE)
        return FileResponse(
            path,
            media_type="text/html; charset=utf-8",
            headers={"Content-Security-Policy": REPORT_PAGE_POLICY},
        )

    @api.get(
        "/{season_id}/charts/{name}.png",
        summary="One of a season's charts, when it has it",
        response_class=FileResponse,
        responses={200: {"content": {"image/png": {}}}, **ERRORS},
    )
    async def chart(season_id: SeasonId, name: ChartName) -> FileResponse:
        return FileResponse(await located(shelf.chart, season_id, name), media_type="image/png")

    return api
