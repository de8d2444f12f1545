"""Helpers shared by the tests: waiting on conditions, running services in-process."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from services.common.bus import Bus
from services.common.clock import Clock
from services.common.contracts import Message
from services.common.runner import Factory, ServiceHost
from services.common.settings import Settings

M = TypeVar("M", bound=Message)


async def eventually(
    check: Callable[[], Any],
    *,
    timeout: float = 15.0,
    interval: float = 0.05,
    what: str = "condition",
) -> Any:
    """Poll ``check`` until it returns a truthy value; fail with the last value after ``timeout``.

    Exceptions raised by ``check`` count as "not yet" (the last one is reported). A check
    that does not answer is given up at the deadline too: the failure then says so.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = check()
            if inspect.isawaitable(result):
                # The last check gets a second at least; one that never answers is given up.
                answer = asyncio.ensure_future(result)
                await asyncio.wait({answer}, timeout=max(deadline - time.monotonic(), 1.0))
                if not answer.done():
                    answer.cancel()
                    raise AssertionError(
                        f"{what} not reached within {timeout}s: the check itself did not answer"
                    )
                result = answer.result()
            if result:
                return result
            last = result
        except AssertionError as exc:
            last = exc
        except Exception as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not reached within {timeout}s; last: {last!r}")
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def running(
    name: str, factory: Factory, settings: Settings, clock: Clock | None = None
) -> AsyncIterator[ServiceHost]:
    """Run one service in-process (same sequence as ``python -m services.<name>``)."""
    host = ServiceHost(name, factory, settings, clock)
    await host.start()
    try:
        yield host
    finally:
        await host.stop()


async def publish_raw(bus: Bus, subject: str, data: bytes) -> None:
    """Bytes as they are, on ``bus``'s connection, as a faulty publisher would send them."""
    await bus._nc.publish(subject, data)
    await bus._nc.flush()


async def collect(
    bus: Bus, subject: str, kind: type[M], speaker: Callable[[M], str] | None = None
) -> list[M]:
    """Every ``kind`` message published on ``subject`` from now on (a plain subscription)."""
    seen: list[M] = []

    async def add(message: M) -> None:
        seen.append(message)

    await bus.subscribe_core(subject, kind, add, speaker=speaker)
    return seen
