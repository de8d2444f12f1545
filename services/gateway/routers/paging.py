"""Query parameters shared by the list endpoints, with their limits."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from services.common.contracts import Page

MAX_LIMIT = 500

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Rows per page (1..{MAX_LIMIT}).")]
Offset = Annotated[int, Query(ge=0, le=1_000_000, description="Rows skipped, newest first.")]


def page(limit: int, offset: int) -> Page:
    return Page(limit=limit, offset=offset)
