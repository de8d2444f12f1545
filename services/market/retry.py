"""Retrying a NATS call with back-off while NATS is unreachable for a moment."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)


def never() -> bool:
    return False


async def until_done(
    attempt: Callable[[], Awaitable[object]],
    *,
    what: str,
    stopped: asyncio.Event,
    give_up: Callable[[], bool] = never,
    delays: tuple[float, ...] = RETRY_DELAYS,
) -> bool:
    """Call ``attempt`` until it succeeds: True; False when stopping or ``give_up()``.

    Every failure is logged; so is the success that ends a run of failures.
    """
    failures = 0
    while not stopped.is_set():
        try:
            await attempt()
        except Exception as exc:
            failures += 1
            if give_up():
                log.error("%s failed %d time(s), giving up: %r", what, failures, exc)
                return False
            delay = delays[min(failures, len(delays)) - 1]
            log.warning("%s failed (%r), retrying in %.1fs", what, exc, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopped.wait(), timeout=delay)
            continue
        if failures:
            log.info("%s done after %d failed attempt(s)", what, failures)
        return True
    return False
