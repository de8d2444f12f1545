"""What the sources that make or hold their prices in memory (simulator, replay) share."""

from __future__ import annotations

from abc import ABC, abstractmethod

from pydantic import BaseModel

from services.market.source import JsonObject


class LocalSource(ABC):
    """A source with nothing to release on close, whose position is one model, saved as
    that model's JSON."""

    @abstractmethod
    def _position(self) -> BaseModel:
        """Where the source is now."""

    def position(self) -> JsonObject:
        return self._position().model_dump(mode="json")

    async def aclose(self) -> None:
        return None
