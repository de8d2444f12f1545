"""A replay cycle's verdicts booked together: which cycles still wait for verdicts.

In a replay (``data_time``) a cycle completes once every agent it expects has a verdict,
so booking the first verdicts while the others are still being judged gains nothing:
the cycle waits for the last one anyway. Booking them together saves a transaction a
batch and its fixed cost (the claims, the round's reads, the outbox's pass), which on a
busy machine is CPU every other service waits for. :class:`CycleGathering` tells the
books consumer, from the messages it holds, whether to wait a little for more before
handing them over (:meth:`~services.common.consumers.Consumers.in_batches`).

It waits only while the held messages end with a verdict of a replay cycle it saw start
whose expected agents are not all in (booked before or held), and never longer than
``seconds`` after the first wait: an agent that does not answer (stopped, slow, a model
taking seconds) costs its cycle that long at most, the verdicts held are then booked
as they are. A live cycle's verdicts are booked the moment they come (a position opens
at the price of its time). What it knows lives in memory only: after a restart the
cycles under way are booked as their verdicts come, as before.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from nats.aio.msg import Msg

from services.common import subjects
from services.common.bus import message_id
from services.common.consumers import Item
from services.common.contracts import CycleStarted, Verdict
from services.common.dead_letters import MSG_ID

GATHER_SECONDS = 0.1
KEPT_CYCLES = 64  # cycles remembered at most (one is under way at a time in a replay)

_VERDICT_PREFIX = subjects.DECISION_VERDICT_ALL.removesuffix("*")


def verdict_of(msg: Msg) -> tuple[str, str] | None:
    """``(cycle id, agent id)`` of a verdict message, from its subject and its
    ``Nats-Msg-Id`` (``<subject>:<cycle id>:<agent id>``); None for another message."""
    if not msg.subject.startswith(_VERDICT_PREFIX):
        return None
    agent = msg.subject[len(_VERDICT_PREFIX) :]
    msg_id = (msg.headers or {}).get(MSG_ID, "")
    head, tail = message_id(msg.subject, ""), f":{agent}"
    if not (msg_id.startswith(head) and msg_id.endswith(tail)):
        return None
    cycle = msg_id[len(head) : len(msg_id) - len(tail)]
    return (cycle, agent) if cycle else None


class CycleGathering:
    """The replay cycles started and not complete, with the agents they still expect."""

    def __init__(self, seconds: float = GATHER_SECONDS) -> None:
        self._seconds = seconds
        self._waiting: OrderedDict[str, set[str]] = OrderedDict()

    def booked(self, items: Sequence[Item]) -> None:
        """Follow a booked batch: the replay cycles it started and the verdicts it booked."""
        for message, _ in items:
            if isinstance(message, CycleStarted) and message.data_time and message.agents:
                self._waiting[message.cycle_id] = set(message.agents)
                while len(self._waiting) > KEPT_CYCLES:
                    self._waiting.popitem(last=False)
            elif isinstance(message, Verdict):
                self._answered(message.decision.cycle_id, message.decision.agent_id)

    def completed(self, cycle_id: str) -> None:
        """A cycle completed (every verdict in, or its deadline passed)."""
        self._waiting.pop(cycle_id, None)

    def wait_for_more(self, held: Sequence[Msg]) -> float:
        """Seconds to wait for more messages before booking ``held`` (0: book them now)."""
        last = verdict_of(held[-1]) if held else None
        if last is None:
            return 0.0
        cycle = last[0]
        expected = self._waiting.get(cycle)
        if expected is None:
            return 0.0
        here = {v[1] for v in map(verdict_of, held) if v is not None and v[0] == cycle}
        return self._seconds if expected - here else 0.0

    def _answered(self, cycle_id: str, agent_id: str) -> None:
        expected = self._waiting.get(cycle_id)
        if expected is None:
            return
        expected.discard(agent_id)
        if not expected:
            del self._waiting[cycle_id]
