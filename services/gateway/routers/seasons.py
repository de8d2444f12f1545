"""``/seasons``: the season reports of ``ARENA_SEASONS_DIR``, read-only like every GET."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

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

Route = TypeVar("Route", bound=Callable[..., Any])
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

    def file_route(path: str, summary: str, media_type: str) -> Callable[[Route], Route]:
        """A GET answering one of a season's files as it is on disk."""
        responses: dict[int | str, dict[str, Any]] = {200: {"content": {media_type: {}}}, **ERRORS}
        return api.get(path, summary=summary, response_class=FileResponse, responses=responses)

    @file_route(
        "/{season_id}/report",
        "A season's report.json as written (docs/seasons.md#report)",
        "application/json",
    )
    async def report(season_id: SeasonId) -> FileResponse:
        path = await located(shelf.file, season_id, REPORT_FILE)
        return FileResponse(path, media_type="application/json")

    @file_route("/{season_id}/report.html", "A season's report page, if any", "text/html")
    async def page(season_id: SeasonId) -> FileResponse:
        path = await located(shelf.file, season_id, PAGE_FILE)
        return FileResponse(
            path,
            media_type="text/html; charset=utf-8",
            headers={"Content-Security-Policy": REPORT_PAGE_POLICY},
        )

    @file_route("/{season_id}/charts/{name}.png", "One of a season's charts, if any", "image/png")
    async def chart(season_id: SeasonId, name: ChartName) -> FileResponse:
        return FileResponse(await located(shelf.chart, season_id, name), media_type="image/png")

    return api
