"""The agent's memory of cycles it has answered, so a redelivery is not paid for twice."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from services.agent.trader import TraderAnswer
from services.common.contracts import Decision

# A few cycles are enough: redeliveries come within one ack-wait of the first delivery.
DEFAULT_CAPACITY = 32


@dataclass
class Answered:
    decision: Decision
    answer: TraderAnswer
    published: bool = False


class RecentAnswers:
    """The last ``capacity`` answers by cycle id; the oldest is forgotten first."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._capacity = capacity
        self._entries: OrderedDict[str, Answered] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, cycle_id: str) -> Answered | None:
        return self._entries.get(cycle_id)

    def remember(self, cycle_id: str, entry: Answered) -> None:
        self._entries[cycle_id] = entry
        self._entries.move_to_end(cycle_id)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)
