"""What the gateway knows of the agents: the line-up, and the last heartbeat of each.

Pure state, no I/O: the relay feeds it heartbeats, the routers read it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict

from services.common.contracts import Heartbeat
from services.common.lineup import Lineup

# An agent heard from less recently than this is reported as silent.
DEFAULT_STALE_AFTER = timedelta(minutes=3)

AgentStatus = Literal["ok", "disabled", "silent", "unknown"]


class AgentState(BaseModel):
    """One agent as the dashboard shows it."""

    model_config = ConfigDict(frozen=True)

    agent_id: str
    display_name: str
    provider: str
    model: str
    enabled_in_lineup: bool
    status: AgentStatus
    reason: str | None = None
    last_heartbeat_at: datetime | None = None


class AgentBoard:
    def __init__(self, lineup: Lineup, stale_after: timedelta = DEFAULT_STALE_AFTER) -> None:
        self._lineup = lineup
        self._stale_after = stale_after
        self._beats: dict[str, Heartbeat] = {}

    def knows(self, agent_id: str) -> bool:
        return any(a.id == agent_id for a in self._lineup.agents) or agent_id in self._beats

    @property
    def known_ids(self) -> tuple[str, ...]:
        ids = [a.id for a in self._lineup.agents]
        return (*ids, *(i for i in self._beats if i not in ids))

    def record(self, beat: Heartbeat) -> bool:
        """Store a heartbeat; True when the agent's status or reason changed."""
        before = self._beats.get(beat.agent_id)
        self._beats[beat.agent_id] = beat
        return before is None or (before.status, before.reason) != (beat.status, beat.reason)

    def states(self, now: datetime) -> tuple[AgentState, ...]:
        states = []
        for spec in self._lineup.agents:
            beat = self._beats.get(spec.id)
            if not spec.enabled:
                status: AgentStatus = "disabled"
                reason: str | None = "disabled in the line-up"
            elif beat is None:
                status, reason = "unknown", "no heartbeat received yet"
            else:
                status, reason = self._judge(beat, now)
            states.append(
                AgentState(
                    agent_id=spec.id,
                    display_name=spec.display_name,
                    provider=spec.provider,
                    model=spec.model,
                    enabled_in_lineup=spec.enabled,
                    status=status,
                    reason=reason,
                    last_heartbeat_at=beat.at if beat else None,
                )
            )
        listed = {spec.id for spec in self._lineup.agents}
        for agent_id, beat in self._beats.items():
            if agent_id in listed:
                continue
            status, reason = self._judge(beat, now)
            states.append(
                AgentState(
                    agent_id=agent_id,
                    display_name=beat.display_name,
                    provider=beat.provider,
                    model=beat.model,
                    enabled_in_lineup=False,
                    status=status,
                    reason=reason,
                    last_heartbeat_at=beat.at,
                )
            )
        return tuple(states)

    def _judge(self, beat: Heartbeat, now: datetime) -> tuple[AgentStatus, str | None]:
        if beat.status == "disabled":
            return "disabled", beat.reason or "disabled (no reason given)"
        if now - beat.at > self._stale_after:
            silent_for = int((now - beat.at).total_seconds())
            return "silent", f"no heartbeat for {silent_for} s"
        return "ok", beat.reason
