"""``python -m tests.faults.soak``: a seeded soak of random faults against a running arena.

Each round waits a random moment (so faults land anywhere in a cycle), then deals one
random fault: a SIGKILL of the ledger, risk, an agent or the market (started again after a
random pause), NATS down for 1 to 5 s, or Postgres down for 5 to 15 s; now and then two
processes at once. At the end the books are checked as the fault suite checks them
(every proposal booked, no dead letter, ``verify`` clean, no effect doubled) and a table
of faults and recovery times is printed. The same seed deals the same faults.

    python -m tests.faults.soak --seed 7 --faults 20
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from tests.faults.arena import AGENTS, FaultArena, fault_arena

SETTINGS = {
    "ARENA_CYCLE_SECONDS": "4",
    "ARENA_DECISION_SECONDS": "3",
    "ARENA_TICK_SECONDS": "0.5",
    "ARENA_REQUEST_TIMEOUT": "1",
}
PROCESSES = ("ledger", "risk", "market", *(f"agent-{a}" for a in AGENTS))


@dataclass(frozen=True)
class Fault:
    name: str
    deal: Callable[[FaultArena], Awaitable[None]]


def _kill(*names: str, down: float) -> Fault:
    async def deal(arena: FaultArena) -> None:
        await asyncio.gather(*(arena.kill_and_restart(n, down) for n in names))

    return Fault(f"SIGKILL {'+'.join(names)} ({down:.1f} s down)", deal)


def _nats(seconds: float) -> Fault:
    async def deal(arena: FaultArena) -> None:
        await arena.nats_outage(seconds)

    return Fault(f"NATS down {seconds:.1f} s", deal)


def _postgres(seconds: float) -> Fault:
    async def deal(arena: FaultArena) -> None:
        await arena.postgres_outage(seconds)

    return Fault(f"Postgres down {seconds:.1f} s", deal)


def plan(seed: int, count: int) -> list[Fault]:
    """``count`` faults for ``seed``: mostly kills, at least one NATS and one Postgres outage."""
    rng = random.Random(seed)
    faults: list[Fault] = [_nats(rng.uniform(1, 5)), _postgres(rng.uniform(5, 15))]
    while len(faults) < count:
        roll = rng.random()
        if roll < 0.1:
            faults.append(_nats(rng.uniform(1, 5)))
        elif roll < 0.2:
            faults.append(_postgres(rng.uniform(5, 15)))
        elif roll < 0.35:
            faults.append(_kill(*rng.sample(PROCESSES, 2), down=rng.uniform(0.2, 3)))
        else:
            faults.append(_kill(rng.choice(PROCESSES), down=rng.uniform(0.2, 3)))
    rng.shuffle(faults)
    return faults


async def soak(seed: int, count: int, log_dir: Path) -> int:
    faults = plan(seed, count)
    rng = random.Random(seed + 1)
    rows: list[tuple[str, float]] = []
    async with fault_arena(log_dir, **SETTINGS) as arena:
        await arena.completed_cycles(2, after=0, timeout=120)
        for n, fault in enumerate(faults, 1):
            await asyncio.sleep(rng.uniform(0, 4))  # where in the cycle the fault lands
            began = time.monotonic()
            await fault.deal(arena)
            first = await arena.completed_cycles(1, after=began, timeout=180)
            rows.append((fault.name, first - began))
            print(f"[{n:>2}/{len(faults)}] {fault.name}: next completed cycle after "
                  f"{first - began:.1f} s", flush=True)  # fmt: skip
        books = await arena.settle_and_check()
    kills = sum(name.count("SIGKILL") + name.count("+") for name, _ in rows)
    print(f"\nseed {seed}: {len(rows)} faults ({kills} process kills), "
          f"{books.decisions} decisions proposed, all booked ({books.late} trades refused "
          f"late), {books.trades} trades, 0 dead letters, verify ok")  # fmt: skip
    worst = max(rows, key=lambda r: r[1])
    print(f"slowest recovery: {worst[0]} ({worst[1]:.1f} s)")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.faults.soak", description=__doc__)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--faults", type=int, default=20)
    parser.add_argument("--logs", type=Path, default=None, help="keep service logs here")
    args = parser.parse_args()
    log_dir = args.logs or Path(tempfile.mkdtemp(prefix="arena-soak-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f"soak: seed {args.seed}, {args.faults} faults; service logs in {log_dir}", flush=True)
    sys.exit(asyncio.run(soak(args.seed, args.faults, log_dir)))


if __name__ == "__main__":
    main()
