"""A hundred agents on one machine: cycle overhead and memory for 3, 10, 30 and 100 agents.

For each N, ``make run``'s launcher (``python -m devstack run``: embedded NATS with its
users, embedded Postgres, every service a supervised process) runs a line-up of N
baselines hosted 25 to a process (``ARENA_AGENTS_PER_PROCESS``), the simulated market and
a short cycle. The cycle overhead is measured from the events, as the read-only ``tooling``
user sees them: from a cycle's ``arena.market.snapshot`` to its ``arena.cycle.completed``
(no model is called, so it is all pipeline: agents, risk, ledger). Memory is the RSS of
every process of the arena (launcher, supervisord, services, agents, nats-server and
Postgres). In the same arena, a bare NATS request-reply and a bare Postgres commit give
the reference. Targets at N=100: p99 < 1 s, total RSS < 6 GB.

    python -m bench.agents [--quick] [--sizes 3,10,30,100]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import nats
import psutil
from nats.aio.msg import Msg

from bench.measures import Measure
from bench.sampling import percentile
from devstack.arena import Launch, launch
from devstack.ports import free_port
from services.common import subjects
from services.common.contracts import CycleCompleted

GROUP = "agents"
SIZES = (3, 10, 30, 100)
QUICK_SIZES = (3, 10)
AGENTS_PER_PROCESS = 25
TARGET_OVERHEAD_SECONDS = 1.0
TARGET_RSS_MB = 6 * 1024
BASELINES = ("ema-cross", "rsi-reversion", "random", "buy-and-hold")
REFERENCE_ROUNDS = 300
CYCLES = 30
QUICK_CYCLES = 4


@dataclass(frozen=True)
class Run:
    """One arena's figures."""

    agents: int
    processes: int
    overheads: tuple[float, ...]
    timed_out: int
    rss_mb: float
    agents_rss_mb: float
    nats_rr: tuple[float, ...]
    pg_commit: tuple[float, ...]
    cpu_seconds: dict[str, float]


def write_lineup(path: Path, count: int) -> None:
    blocks = [
        f'[[agents]]\nid = "b{n:03d}"\ndisplay_name = "Baseline {n}"\n'
        f'provider = "baseline"\nmodel = "{BASELINES[n % len(BASELINES)]}"\n'
        for n in range(count)
    ]
    path.write_text("\n".join(blocks), encoding="utf-8")


@contextmanager
def arena(root: Path, count: int, cycle_seconds: float) -> Iterator[Launch]:
    lineup = root / "agents.toml"
    write_lineup(lineup, count)
    settings = {
        "ARENA_AGENTS_FILE": str(lineup),
        "ARENA_AGENTS_PER_PROCESS": str(AGENTS_PER_PROCESS),
        "ARENA_CYCLE_SECONDS": str(cycle_seconds),
        "MARKET_SOURCE": "simulator",
        "GATEWAY_PORT": str(free_port()),
    }
    with launch(root, settings, drop=("AGENT_ID",)) as launched:
        yield launched


def arena_processes(launch: Launch) -> list[psutil.Process]:
    """Every process of the arena, Postgres (a daemon of its own) included."""
    found = {p.pid: p for p in psutil.Process(launch.process.pid).children(recursive=True)}
    found[launch.process.pid] = psutil.Process(launch.process.pid)
    pid_file = launch.data_dir / "postgres" / "postmaster.pid"
    pid = int(pid_file.read_text().split()[0]) if pid_file.exists() else 0
    if pid > 0:  # negative while Postgres runs single-user (set-up)
        with contextlib.suppress(psutil.Error):
            postmaster = psutil.Process(pid)
            for p in (postmaster, *postmaster.children(recursive=True)):
                found[p.pid] = p
    return list(found.values())


def role(process: psutil.Process) -> str:
    """What a process of the arena is: ``agent``, ``ledger``, ..., ``nats``, ``postgres``."""
    line = _cmdline(process)
    for word in line:
        if word.startswith("services."):
            return word.removeprefix("services.")
    name = " ".join(line)
    for known in ("nats-server", "postgres", "supervisord", "devstack"):
        if known in name:
            return known
    return "other"


def cpu_seconds(processes: list[psutil.Process]) -> dict[str, float]:
    """CPU time (user + system) spent so far by each role."""
    spent: dict[str, float] = {}
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        key = role(process)
        spent[key] = spent.get(key, 0.0) + times.user + times.system
    return spent


def rss_mb(processes: list[psutil.Process]) -> tuple[float, float]:
    """Total RSS of ``processes`` and that of the agent processes, in MB."""
    total = agents = 0
    for process in processes:
        try:
            rss = process.memory_info().rss
            is_agent = "services.agent" in process.cmdline()
        except psutil.Error:
            continue
        total += rss
        agents += rss if is_agent else 0
    return total / 2**20, agents / 2**20


async def cycles(url: str, count: int, agents: int, launch: Launch, timeout: float) -> Cycles:
    """Overheads of ``count`` cycles opened once every agent has beaten its heartbeat, and
    the CPU time each part of the arena spent meanwhile."""
    nc = await nats.connect(url, allow_reconnect=False)
    loop = asyncio.get_running_loop()
    snapshots: dict[str, float] = {}
    beating: set[str] = set()
    ready_at: list[float] = []
    result = Cycles()
    done = asyncio.Event()

    async def on_beat(msg: Msg) -> None:
        beating.add(msg.subject.rsplit(".", 1)[-1])
        if len(beating) == agents and not ready_at:
            ready_at.append(loop.time())
            result.cpu_before = cpu_seconds(arena_processes(launch))

    async def on_snapshot(msg: Msg) -> None:
        # Only the cycle id is needed: found without decoding the whole snapshot.
        found = re.search(rb'"cycle_id":\s*"([^"]+)"', msg.data)
        if found and ready_at:
            snapshots[found.group(1).decode()] = loop.time()

    async def on_completed(msg: Msg) -> None:
        event = CycleCompleted.model_validate_json(msg.data)
        opened = snapshots.pop(event.cycle_id, None)
        if opened is None or done.is_set():
            return
        result.overheads.append(loop.time() - opened)
        result.timed_out += int(event.timed_out)
        if len(result.overheads) >= count:
            done.set()
            after = cpu_seconds(arena_processes(launch))
            result.cpu = {k: v - result.cpu_before.get(k, 0.0) for k, v in after.items()}

    await nc.subscribe(subjects.AGENT_HEARTBEAT_ALL, cb=on_beat)
    await nc.subscribe(subjects.MARKET_SNAPSHOT, cb=on_snapshot)
    await nc.subscribe(subjects.CYCLE_COMPLETED, cb=on_completed)
    try:
        deadline = loop.time() + timeout
        while not done.is_set():
            launch.check_running()
            if loop.time() > deadline:
                raise RuntimeError(
                    f"{len(result.overheads)} of {count} cycles in {timeout:.0f} s "
                    f"({len(beating)} of {agents} agents beating)"
                )
            await asyncio.sleep(0.2)
    finally:
        await nc.close()
    return result


class Cycles:
    """What the cycles of one arena took, as they completed."""

    def __init__(self) -> None:
        self.overheads: list[float] = []
        self.timed_out = 0
        self.cpu_before: dict[str, float] = {}
        self.cpu: dict[str, float] = {}


async def _timed(rounds: int, once: Callable[[], Awaitable[object]]) -> tuple[float, ...]:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        await once()
        samples.append(time.perf_counter() - started)
    return tuple(samples)


async def nats_request_reply(url: str, rounds: int = REFERENCE_ROUNDS) -> tuple[float, ...]:
    """A bare request-reply on the arena's NATS (as its admin: any subject)."""
    nc = await nats.connect(url, allow_reconnect=False)
    try:

        async def echo(msg: Msg) -> None:
            await msg.respond(msg.data)

        await nc.subscribe("bench.echo", cb=echo)
        await nc.flush()
        return await _timed(rounds, lambda: nc.request("bench.echo", b"x" * 64, timeout=5))
    finally:
        await nc.close()


async def postgres_commit(data_dir: Path, rounds: int = REFERENCE_ROUNDS) -> tuple[float, ...]:
    """A bare one-row insert committed on the arena's Postgres."""
    db = await asyncpg.connect(f"postgresql://postgres@/arena?host={data_dir / 'postgres'}")
    try:
        await db.execute("CREATE TEMP TABLE bench_commit (n int, at timestamptz)")

        async def commit() -> None:
            async with db.transaction():
                await db.execute("INSERT INTO bench_commit VALUES (1, now())")

        return await _timed(rounds, commit)
    finally:
        await db.close()


def run_one(agents: int, cycle_count: int, cycle_seconds: float) -> Run:
    root = Path(tempfile.mkdtemp(prefix="arena-bench-agents-"))
    try:
        with arena(root, agents, cycle_seconds) as launch:
            port = launch.nats_port()
            tooling = f"nats://tooling:{launch.password('tooling')}@127.0.0.1:{port}"
            admin = f"nats://admin:{launch.password('admin')}@127.0.0.1:{port}"
            timeout = 180 + cycle_count * cycle_seconds * 3
            measured = asyncio.run(cycles(tooling, cycle_count, agents, launch, timeout))
            total, agents_rss = rss_mb(arena_processes(launch))
            processes = sum(1 for p in arena_processes(launch) if "services.agent" in _cmdline(p))
            rr = asyncio.run(nats_request_reply(admin))
            commit = asyncio.run(postgres_commit(launch.data_dir))
        return Run(
            agents=agents,
            processes=processes,
            overheads=tuple(measured.overheads),
            timed_out=measured.timed_out,
            rss_mb=total,
            agents_rss_mb=agents_rss,
            nats_rr=rr,
            pg_commit=commit,
            cpu_seconds=measured.cpu,
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return list(process.cmdline())
    except psutil.Error:
        return []


def measures(runs: list[Run]) -> list[Measure]:
    found: list[Measure] = []
    for run in runs:
        n = run.agents
        at_target = n == max(SIZES)
        rr50, rr99 = percentile(run.nats_rr, 50), percentile(run.nats_rr, 99)
        pg99 = percentile(run.pg_commit, 99)
        found += [
            Measure(
                GROUP,
                f"cycle overhead p50, {n} agents",
                statistics.median(run.overheads),
                "s",
                reference=rr50 + percentile(run.pg_commit, 50),
                reference_name="bare NATS request-reply + Postgres commit p50",
            ),
            Measure(
                GROUP,
                f"cycle overhead p99, {n} agents",
                percentile(run.overheads, 99),
                "s",
                target=TARGET_OVERHEAD_SECONDS if at_target else None,
                reference=rr99 + pg99,
                reference_name="bare NATS request-reply + Postgres commit p99",
            ),
            Measure(
                GROUP,
                f"total RSS, {n} agents",
                run.rss_mb,
                "MB",
                target=TARGET_RSS_MB if at_target else None,
            ),
        ]
    if runs:
        last = runs[-1]
        found += [
            Measure(GROUP, "bare NATS request-reply p99", percentile(last.nats_rr, 99), "s"),
            Measure(GROUP, "bare Postgres commit p99", percentile(last.pg_commit, 99), "s"),
        ]
    return found


def measure(quick: bool = False, sizes: tuple[int, ...] | None = None) -> list[Measure]:
    return measures(collect(quick, sizes))


def collect(quick: bool = False, sizes: tuple[int, ...] | None = None) -> list[Run]:
    chosen = sizes or (QUICK_SIZES if quick else SIZES)
    if quick:
        return [run_one(n, QUICK_CYCLES, 1.0) for n in chosen]
    return [run_one(n, CYCLES, 2.0 if n <= 30 else 3.0) for n in chosen]


def table(runs: list[Run]) -> str:
    lines = [
        f"{'agents':>7}{'procs':>7}{'cycles':>8}{'p50 s':>9}{'p99 s':>9}{'max s':>9}"
        f"{'t/o':>5}{'RSS MB':>9}{'agents MB':>11}{'MB/agent':>10}{'NATS rr p99':>13}"
        f"{'PG commit p99':>15}"
    ]
    for run in runs:
        o = run.overheads
        lines.append(
            f"{run.agents:>7}{run.processes:>7}{len(o):>8}{statistics.median(o):>9.3f}"
            f"{percentile(o, 99):>9.3f}{max(o):>9.3f}{run.timed_out:>5}{run.rss_mb:>9.0f}"
            f"{run.agents_rss_mb:>11.0f}{run.agents_rss_mb / run.agents:>10.1f}"
            f"{percentile(run.nats_rr, 99) * 1000:>11.2f}ms"
            f"{percentile(run.pg_commit, 99) * 1000:>13.2f}ms"
        )
    for run in runs:
        spent = sorted(run.cpu_seconds.items(), key=lambda kv: -kv[1])
        lines.append(
            f"CPU s while measuring, {run.agents} agents: "
            + ", ".join(f"{k} {v:.1f}" for k, v in spent if v >= 0.05)
        )
    verdicts = [
        f"  {m.name}: {m.value:.3f} {m.unit} (target {m.target}) "
        f"{'ok' if m.meets_target else 'MISSED'}"
        for m in measures(runs)
        if m.target is not None
    ]
    return "\n".join([*lines, *verdicts])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.agents", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 and 10 agents, a few cycles")
    parser.add_argument("--sizes", default=None, help="comma-separated agent counts")
    args = parser.parse_args()
    sizes = tuple(int(s) for s in args.sizes.split(",")) if args.sizes else None
    print(table(collect(args.quick, sizes)))


if __name__ == "__main__":
    main()
