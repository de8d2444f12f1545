"""Faults dealt to a running arena: nothing proposed is lost, nothing is applied twice.

One arena (market, three baseline agents, risk, ledger as processes, on their own NATS and
Postgres) goes through every kind of fault in turn, each in the middle of a cycle: the
ledger, risk, an agent and the market are SIGKILLed and started again, Postgres is down
for 15 s and NATS for 5 s. After each, the arena must complete cycles again; at the end
every decision an agent proposed is in the books (applied, rejected, or recorded late
with its reason), the dead-letter stream is empty, ``verify`` passes and no effect was
applied twice. The seconds from each fault to the next completed cycle are printed. A
replay goes through the same faults: its cycles run in the data's time, as fast as they
complete, and the ledger holds a cycle's first verdicts while it waits for the rest.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from bench.replay_data import write_month
from tests.faults.arena import FaultArena, fault_arena

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]

SETTINGS = {
    "ARENA_CYCLE_SECONDS": "4",
    "ARENA_DECISION_SECONDS": "3",
    "ARENA_TICK_SECONDS": "0.5",
    "ARENA_REQUEST_TIMEOUT": "1",
}
CYCLES_BETWEEN_FAULTS = 2
# A replay plays its one-minute cycles as fast as they complete: a week of data outlasts
# the faults (a replay finished would complete no more cycles). An agent's snapshot whose
# ack a fault lost comes back after the cycle's seconds and 30 more (the agent skips the
# copy): one-minute cycles keep that within the settling wait.
REPLAY_SETTINGS = {
    "ARENA_CYCLE_SECONDS": "60",
    "ARENA_DECISION_SECONDS": "3",
    "ARENA_REQUEST_TIMEOUT": "1",
}
REPLAY_DAYS = 7


async def _recovery(arena: FaultArena, name: str, fault: Callable[[], Awaitable[None]]) -> float:
    """Deal ``fault`` mid-cycle; seconds from it to the next cycle completed in time."""
    await arena.next_cycle_start()
    began = time.monotonic()
    await fault()
    first = await arena.completed_cycles(1, after=began, timeout=120)
    await arena.completed_cycles(CYCLES_BETWEEN_FAULTS, after=began, timeout=120)
    seconds = first - began
    print(f"fault {name}: next completed cycle after {seconds:.1f} s")
    return seconds


async def _every_fault(arena: FaultArena) -> dict[str, float]:
    """Each fault in turn, mid-cycle; the seconds from each to the next completed cycle."""
    await arena.completed_cycles(CYCLES_BETWEEN_FAULTS, after=0, timeout=120)
    return {
        "ledger SIGKILL": await _recovery(
            arena, "ledger SIGKILL", lambda: arena.kill_and_restart("ledger")
        ),
        "risk SIGKILL": await _recovery(
            arena, "risk SIGKILL", lambda: arena.kill_and_restart("risk")
        ),
        "agent SIGKILL": await _recovery(
            arena, "agent SIGKILL", lambda: arena.kill_and_restart("agent-random")
        ),
        "market SIGKILL": await _recovery(
            arena, "market SIGKILL", lambda: arena.kill_and_restart("market")
        ),
        "Postgres down 15 s": await _recovery(
            arena, "Postgres down 15 s", lambda: arena.postgres_outage(15)
        ),
        "NATS down 5 s": await _recovery(arena, "NATS down 5 s", lambda: arena.nats_outage(5)),
    }


async def test_every_fault_loses_no_decision_and_doubles_no_effect(tmp_path: Path) -> None:
    async with fault_arena(tmp_path, **SETTINGS) as arena:
        recoveries = await _every_fault(arena)
        (tmp_path / "recoveries.json").write_text(json.dumps(recoveries, indent=1))

        books = await arena.settle_and_check()
        print(f"{books.decisions} decisions proposed and booked; {books.late} trades refused late")
        assert books.decisions >= 3 * CYCLES_BETWEEN_FAULTS * 6, books


async def test_a_replay_loses_no_decision_and_doubles_no_effect_through_every_fault(
    tmp_path: Path,
) -> None:
    """The same faults dealt to a replay: cycles in the data's time, as fast as they
    complete, the ledger booking each cycle's verdicts together (it holds the first ones
    while it waits for the rest)."""
    data = tmp_path / "data"
    write_month(data, days=REPLAY_DAYS)
    settings = {**REPLAY_SETTINGS, "MARKET_SOURCE": f"replay:{data}"}
    async with fault_arena(tmp_path, **settings) as arena:
        recoveries = await _every_fault(arena)
        (tmp_path / "recoveries.json").write_text(json.dumps(recoveries, indent=1))

        books = await arena.settle_and_check()
        print(f"{books.decisions} decisions proposed and booked; {books.late} trades refused late")
        assert books.decisions >= 3 * CYCLES_BETWEEN_FAULTS * 6, books
