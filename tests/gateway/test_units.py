"""The gateway's pure parts: the read cache, the agent board and the control guard."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from services.common.clock import ManualClock
from services.common.contracts import Heartbeat
from services.common.lineup import AgentSpec, Lineup
from services.gateway.agents import AgentBoard
from services.gateway.cache import ReadCache
from services.gateway.control import AdminGuard, ControlDenied, RateLimit
from tests.support import eventually

NOW = datetime(2025, 3, 1, tzinfo=UTC)


class Ticker:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_cache_answers_from_memory_until_ttl_or_invalidation() -> None:
    ticker = Ticker()
    cache = ReadCache(ttl=1.0, now=ticker)
    loads: list[int] = []

    async def load() -> bytes:
        loads.append(1)
        return str(len(loads)).encode()

    assert await cache.get("k", load) == b"1"
    assert await cache.get("k", load) == b"1"
    ticker.now = 1.5
    assert await cache.get("k", load) == b"2"
    cache.invalidate("k")
    assert await cache.get("k", load) == b"3"
    assert (cache.hits, cache.misses) == (1, 3)


async def test_invalidating_a_key_drops_its_query_variants_and_only_those() -> None:
    cache = ReadCache(ttl=10)
    gate = asyncio.Event()
    loads: list[str] = []

    def loader(key: str, wait: bool = False) -> Callable[[], Awaitable[bytes]]:
        async def load() -> bytes:
            loads.append(key)
            if wait:
                await gate.wait()
            return f"{key}:{loads.count(key)}".encode()

        return load

    for key in ("equity?a", "equity?b", "equities", "leaderboard"):
        await cache.get(key, loader(key))
    loading = asyncio.create_task(cache.get("equity?c", loader("equity?c", wait=True)))
    await eventually(lambda: "equity?c" in loads, what="the load of equity?c started")
    cache.invalidate("equity")
    gate.set()
    assert await loading == b"equity?c:1"  # overtaken: not stored
    assert await cache.get("equity?a", loader("equity?a")) == b"equity?a:2"
    assert await cache.get("equity?b", loader("equity?b")) == b"equity?b:2"
    assert await cache.get("equity?c", loader("equity?c")) == b"equity?c:2"
    assert await cache.get("equities", loader("equities")) == b"equities:1"
    assert await cache.get("leaderboard", loader("leaderboard")) == b"leaderboard:1"


async def test_concurrent_misses_share_one_load_and_errors_are_not_cached() -> None:
    cache = ReadCache(ttl=10)
    gate = asyncio.Event()
    calls = 0

    async def slow() -> bytes:
        nonlocal calls
        calls += 1
        await gate.wait()
        return b"x"

    waiting = [asyncio.create_task(cache.get("k", slow)) for _ in range(5)]
    await eventually(lambda: calls == 1, what="the first load started")
    gate.set()
    assert await asyncio.gather(*waiting) == [b"x"] * 5
    assert calls == 1

    async def failing() -> bytes:
        raise RuntimeError("ledger down")

    with pytest.raises(RuntimeError):
        await cache.get("e", failing)
    assert await cache.get("e", slow) == b"x"


async def test_a_load_overtaken_by_an_invalidation_is_not_stored() -> None:
    cache = ReadCache(ttl=10)
    gate = asyncio.Event()
    answers = iter([b"old", b"new"])
    started: list[bytes] = []

    async def load() -> bytes:
        answer = next(answers)
        started.append(answer)
        if answer == b"old":
            await gate.wait()
        return answer

    stale = asyncio.create_task(cache.get("k", load))
    await eventually(lambda: started == [b"old"], what="the old load started")
    cache.invalidate("k")
    gate.set()
    assert await stale == b"old"
    assert await cache.get("k", load) == b"new"


def _lineup() -> Lineup:
    return Lineup(
        agents=(
            AgentSpec(id="claude", display_name="Claude", provider="anthropic", model="m"),
            AgentSpec(id="off", display_name="Off", provider="openai", model="m", enabled=False),
        )
    )


def _beat(status: str, at: datetime, reason: str | None = None) -> Heartbeat:
    return Heartbeat.model_validate(
        {
            "agent_id": "claude",
            "display_name": "Claude",
            "provider": "anthropic",
            "model": "m",
            "status": status,
            "reason": reason,
            "at": at,
        }
    )


def test_agent_board_reports_heartbeats_lineup_and_silence() -> None:
    board = AgentBoard(_lineup(), stale_after=timedelta(minutes=3))
    states = {s.agent_id: s for s in board.states(NOW)}
    assert (states["claude"].status, states["off"].status) == ("unknown", "disabled")
    assert states["off"].reason == "disabled in the line-up"

    assert board.record(_beat("ok", NOW))
    assert not board.record(_beat("ok", NOW + timedelta(seconds=30)))  # no change
    assert board.states(NOW)[0].status == "ok"
    late = board.states(NOW + timedelta(minutes=10))[0]
    assert (late.status, late.reason) == ("silent", "no heartbeat for 570 s")

    assert board.record(_beat("disabled", NOW, "ANTHROPIC_API_KEY is not set"))
    disabled = board.states(NOW)[0]
    assert (disabled.status, disabled.reason) == ("disabled", "ANTHROPIC_API_KEY is not set")
    assert board.knows("claude") and not board.knows("nobody")


def test_rate_limit_is_a_sliding_window() -> None:
    clock = ManualClock(NOW)
    limit = RateLimit(clock, calls=2, window=timedelta(seconds=10))
    limit.take()
    clock.advance(4)
    limit.take()
    with pytest.raises(ControlDenied) as denied:
        limit.take()
    assert (denied.value.status_code, denied.value.retry_after) == (429, 6)
    clock.advance(6)
    limit.take()  # the first call left the window


def test_guard_checks_the_token_before_counting() -> None:
    clock = ManualClock(NOW)
    guard = AdminGuard(SecretStr("t0ken"), RateLimit(clock, 1, timedelta(minutes=1)))
    for header in (None, "t0ken", "Basic t0ken", "Bearer wrong"):
        with pytest.raises(ControlDenied) as denied:
            guard.check(header)
        assert denied.value.status_code == 401
    guard.check("Bearer t0ken")
    with pytest.raises(ControlDenied, match="too many"):
        guard.check("bearer t0ken")
    off = AdminGuard(None, RateLimit(clock, 1, timedelta(minutes=1)))
    with pytest.raises(ControlDenied, match="ARENA_ADMIN_TOKEN") as denied:
        off.check("Bearer anything")
    assert denied.value.status_code == 403
    assert not off.enabled
