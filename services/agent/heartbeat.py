"""The agent's periodic "still here" on ``arena.agent.heartbeat.<agent>``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from services.common import subjects
from services.common.bus import Bus
from services.common.clock import Clock
from services.common.contracts import Heartbeat
from services.common.lineup import AgentSpec
from services.common.tasks import cancel_and_wait

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 10.0


class Heartbeater:
    def __init__(
        self,
        bus: Bus,
        clock: Clock,
        spec: AgentSpec,
        interval: float = HEARTBEAT_SECONDS,
        disabled_reason: Callable[[], str | None] = lambda: None,
    ) -> None:
        self._bus = bus
        self._clock = clock
        self._spec = spec
        self._interval = interval
        self._disabled_reason = disabled_reason
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"heartbeat:{self._spec.id}")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])
            self._task = None

    def beat(self) -> Heartbeat:
        reason = self._disabled_reason()
        return Heartbeat(
            agent_id=self._spec.id,
            display_name=self._spec.display_name,
            provider=self._spec.provider,
            model=self._spec.model,
            status="ok" if reason is None else "disabled",
            reason=reason,
            at=self._clock.now(),
        )

    async def beat_now(self) -> None:
        """Publish at once (a change of status should not wait for the next interval)."""
        await self._publish()

    async def _run(self) -> None:
        while True:
            await self._publish()
            await asyncio.sleep(self._interval)

    async def _publish(self) -> None:
        heartbeat = self.beat()
        try:
            await self._bus.publish(
                subjects.agent_heartbeat(self._spec.id),
                heartbeat,
                natural_id=f"{self._spec.id}:{heartbeat.at.isoformat()}:{heartbeat.status}",
            )
        except Exception as exc:
            # A missed heartbeat is what a heartbeat is for; the next one may get through.
            log.warning("heartbeat not published: %s", exc)
