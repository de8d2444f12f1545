"""A short-lived cache of hot read answers, as serialised JSON.

Many dashboards poll the same leaderboard and prices; the cache answers them from memory
and asks the ledger or market once. The relay invalidates an entry when an event says it
changed (an account update, a tick); the TTL bounds staleness if an event was missed.
Concurrent misses share one request. A load that started before an invalidation does
not store its (possibly stale) answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pydantic import BaseModel
from starlette.responses import Response

DEFAULT_TTL_SECONDS = 1.0


@dataclass
class _Entry:
    body: bytes
    expires: float


class ReadCache:
    def __init__(
        self, ttl: float = DEFAULT_TTL_SECONDS, now: Callable[[], float] = time.monotonic
    ) -> None:
        if ttl < 0:
            raise ValueError("ttl must not be negative")
        self._ttl = ttl
        self._now = now
        self._entries: dict[str, _Entry] = {}
        self._loading: dict[str, asyncio.Future[bytes]] = {}
        self._generation: dict[str, int] = {}
        self.hits = 0
        self.misses = 0

    async def get(self, key: str, load: Callable[[], Awaitable[bytes]]) -> bytes:
        entry = self._entries.get(key)
        if entry is not None and entry.expires > self._now():
            self.hits += 1
            return entry.body
        pending = self._loading.get(key)
        if pending is not None:
            self.hits += 1
            return await asyncio.shield(pending)
        self.misses += 1
        generation = self._generation.get(key, 0)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            body = await load()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: nobody else may be waiting
            raise
        else:
            future.set_result(body)
            if self._generation.get(key, 0) == generation:
                self._entries[key] = _Entry(body, self._now() + self._ttl)
            return body
        finally:
            if self._loading.get(key) is future:
                del self._loading[key]

    def invalidate(self, *keys: str) -> None:
        """Drop ``keys`` and their variants: ``key?...`` (one answer per query string)."""
        for key in keys:
            variant = f"{key}?"
            known = {*self._entries, *self._loading}
            for k in [key, *(k for k in known if k.startswith(variant))]:
                self._entries.pop(k, None)
                self._loading.pop(k, None)  # later readers must not join a stale load
                self._generation[k] = self._generation.get(k, 0) + 1


async def serialised(answer: Awaitable[BaseModel]) -> bytes:
    return (await answer).model_dump_json().encode()


def json_response(body: bytes) -> Response:
    """Already-serialised JSON, sent as it is (no second validation by FastAPI)."""
    return Response(content=body, media_type="application/json")
