"""A small time-to-live cache on an injected clock (REST reads are reused for 60 s)."""

from __future__ import annotations

from typing import Generic, TypeVar

from services.common.clock import Clock

V = TypeVar("V")


class TtlCache(Generic[V]):
    def __init__(self, clock: Clock, max_entries: int = 1024) -> None:
        self._clock = clock
        self._max = max_entries
        self._entries: dict[str, tuple[float, V]] = {}

    def get(self, key: str) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if self._clock.monotonic() >= expires:
            del self._entries[key]
            return None
        return value

    def put(self, key: str, value: V, ttl: float) -> None:
        if len(self._entries) >= self._max:
            now = self._clock.monotonic()
            self._entries = {k: e for k, e in self._entries.items() if e[0] > now}
            if len(self._entries) >= self._max:
                self._entries.pop(next(iter(self._entries)))
        self._entries[key] = (self._clock.monotonic() + ttl, value)
