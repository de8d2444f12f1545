"""Rows handed to a statement as one array per column (``unnest($1::text[], ...)``): a
set of rows in one round trip, whatever its size."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """``rows`` as ``width`` column lists (empty lists when there are no rows)."""
    return [[row[i] for row in rows] for i in range(width)]
