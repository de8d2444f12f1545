"""Where a cycle's wall time goes, as a NATS subscriber sees it.

Listens (core subscriptions, read-only: the ``tooling`` user is enough) to the cycle's
events and splits each cycle into stages: the market's start and snapshot, the agents'
decisions, risk's verdicts, the ledger's completion, and the wait until the market starts
the next cycle (ticks played in between, in a replay). Used by ``bench.replay``.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

import nats
from nats.aio.msg import Msg

# Stage name -> (from event, to event); events are per cycle, "first"/"last" of a kind.
STAGES = (
    ("snapshot published", "started", "snapshot"),
    ("agents decide", "snapshot", "last_decision"),
    ("risk judges", "last_decision", "last_verdict"),
    ("ledger books", "last_verdict", "completed"),
    ("next cycle starts", "completed", "next_started"),
)


@dataclass
class _Cycle:
    seen: dict[str, float] = field(default_factory=dict)

    def mark(self, event: str, at: float, *, last: bool = False) -> None:
        if last or event not in self.seen:
            self.seen[event] = at


class CycleTimeline:
    """Collects event arrival times per cycle on a thread of its own."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._cycles: dict[str, _Cycle] = defaultdict(_Cycle)
        self._order: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cycle-timeline", daemon=True)

    def start(self) -> CycleTimeline:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        asyncio.run(self._listen())

    async def _listen(self) -> None:
        nc = await nats.connect(self._url, allow_reconnect=True, max_reconnect_attempts=-1)

        async def on_message(msg: Msg) -> None:
            at = time.monotonic()
            try:
                body = json.loads(msg.data)
                # A verdict names its cycle in the decision it judges.
                cycle_id = body["cycle_id"] if "cycle_id" in body else body["decision"]["cycle_id"]
            except (ValueError, KeyError, TypeError):
                return
            subject = msg.subject
            cycle = self._cycles[cycle_id]
            if subject == "arena.cycle.started":
                self._order.append(cycle_id)
                cycle.mark("started", at)
            elif subject == "arena.market.snapshot":
                cycle.mark("snapshot", at)
            elif subject.startswith("arena.decision.proposed."):
                cycle.mark("last_decision", at, last=True)
            elif subject.startswith("arena.decision.verdict."):
                cycle.mark("last_verdict", at, last=True)
            elif subject == "arena.cycle.completed":
                cycle.mark("completed", at)

        for subject in (
            "arena.cycle.*",
            "arena.market.snapshot",
            "arena.decision.proposed.*",
            "arena.decision.verdict.*",
        ):
            await nc.subscribe(subject, cb=on_message)
        await asyncio.to_thread(self._stop.wait)
        await nc.close()

    def stages_ms(self) -> dict[str, dict[str, float]]:
        """Median and p95 milliseconds of each stage over the cycles seen whole."""
        durations: dict[str, list[float]] = {name: [] for name, _, _ in STAGES}
        for current, following in zip(self._order, self._order[1:], strict=False):
            seen = dict(self._cycles[current].seen)
            if "started" in self._cycles[following].seen:
                seen["next_started"] = self._cycles[following].seen["started"]
            for name, begin, end in STAGES:
                if begin in seen and end in seen:
                    durations[name].append(1000 * (seen[end] - seen[begin]))
        return {
            name: {
                "median": round(statistics.median(values), 2),
                "p95": round(statistics.quantiles(values, n=20)[-1], 2),
                "cycles": len(values),
            }
            for name, values in durations.items()
            if len(values) >= 2
        }
