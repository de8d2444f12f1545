"""The design's floor: a replay cycle's messages and writes with nothing done between them.

What the arena's design asks of every cycle (README.md, "Architecture", and
docs/durability.md: one cycle at a time, durable pull consumers acked after the effect,
the messages' ids claimed with the effect, events through an outbox), played by processes
that do nothing else, on their own embedded nats-server (JetStream, file storage, ids for
duplicates) and Postgres, in the shipped line-up's shape (three agent processes with one
agent each, a host with four), each step taken with the fewest round trips it allows:

- the market publishes the lot (the period's five bars as ticks, the cycle's start, the
  snapshot without candles) and waits for the stream's acknowledgements, then writes its
  state to its key-value bucket while it waits for the cycle's completion on its durable;
- the ledger pulls the lot from its durable and books it in one statement (the messages'
  ids claimed, the accounts marked, the cycle stored);
- each agent pulls the snapshot from its own durable, asks the ledger for its process's
  portfolios (answered from the ledger's memory once the lot is booked), publishes its
  proposal, waits for the stream's acknowledgement, acks the snapshot;
- risk pulls the proposals from its durable, publishes their verdicts together, acks;
- the ledger pulls the cycle's seven verdicts and books them in one statement (ids
  claimed, decisions, equity snapshots, accounts, the cycle closed, ten outbox rows
  returned), publishes those events (the completion among them), marks them sent, acks;
- the gateway receives the events on plain subscriptions.

No decoding, validation, strategy or accounting, and no NATS users (the arena's server
checks each one's permissions on every message): the cycles a second this reaches are
what the design allows on this machine before any service does its work, and its CPU a
cycle is what NATS, Postgres and the event loops' socket work cost at the least.

    python -m bench.cycle_floor [--cycles 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import asyncpg
import nats
import psutil
import uvloop
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, KeyValueConfig, StorageType, StreamConfig
from nats.js.client import JetStreamContext

from bench.cpu import postgres_seconds, process_seconds
from services.common.durables import ready_messages

STREAM = "FLOOR"
BARS_PER_CYCLE = 5  # one-minute bars of a five-minute cycle
SNAPSHOT_BYTES = 9_000  # the snapshot on the wire, candles omitted (docs/market.md)
TICK_BYTES = 1_200
PROPOSAL_BYTES = 900
EVENTS_PER_CYCLE = 10  # the ledger's events a replay cycle (docs/bench.md: 31 in all)
LINEUP: tuple[tuple[str, ...], ...] = (
    ("llm-a",),
    ("llm-b",),
    ("llm-c",),
    ("base-1", "base-2", "base-3", "base-4"),
)
WAIT = 30.0
PROGRESS_EVERY = 2000  # cycles between the market's progress reports

SCHEMA = """
CREATE TABLE IF NOT EXISTS claimed (id text PRIMARY KEY);
CREATE TABLE IF NOT EXISTS accounts (agent text PRIMARY KEY, balance numeric NOT NULL,
    equity numeric NOT NULL, cycle bigint NOT NULL);
CREATE TABLE IF NOT EXISTS cycles (id bigint PRIMARY KEY, prices jsonb NOT NULL,
    completed boolean NOT NULL DEFAULT false);
CREATE TABLE IF NOT EXISTS decisions (id text PRIMARY KEY, cycle bigint NOT NULL,
    agent text NOT NULL, body jsonb NOT NULL);
CREATE TABLE IF NOT EXISTS equity (agent text, cycle bigint, equity numeric NOT NULL,
    PRIMARY KEY (agent, cycle));
CREATE TABLE IF NOT EXISTS outbox (id bigserial PRIMARY KEY, subject text NOT NULL,
    msg_id text NOT NULL, body bytea NOT NULL, published_at timestamptz);
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (id) WHERE published_at IS NULL;
"""


@dataclass(frozen=True)
class Floor:
    """What one run of the floor measured."""

    cycles: int  # timed: from the first completion to the last
    seconds: float
    decisions: int  # booked over every cycle played, the first included
    unsent: int  # events the relay had not sent at the end (0: it sent them all)
    cpu_ms_per_cycle: dict[str, float]

    @property
    def cycles_per_second(self) -> float:
        return self.cycles / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_ms_per_cycle_total(self) -> float:
        return round(sum(self.cpu_ms_per_cycle.values()), 1)

    def as_dict(self) -> dict[str, Any]:
        return {
            "cycles": self.cycles,
            "seconds": round(self.seconds, 2),
            "cycles_per_second": round(self.cycles_per_second, 1),
            "decisions": self.decisions,
            "unsent": self.unsent,
            "cpu_ms_per_cycle": self.cpu_ms_per_cycle,
            "cpu_ms_per_cycle_total": self.cpu_ms_per_cycle_total,
        }


def _cycle_of(msg: Msg) -> int:
    return int(json.loads(msg.data[: msg.data.index(b"}") + 1])["cycle"])


def _msg_id(msg: Msg) -> str:
    return (msg.header or {})["Nats-Msg-Id"]


def line_up_agents() -> tuple[str, ...]:
    return tuple(agent for group in LINEUP for agent in group)


def _payload(size: int, **fields: object) -> bytes:
    body = json.dumps(fields).encode()
    return body + b" " * max(size - len(body), 0)


async def _durable(
    js: JetStreamContext, name: str, subjects: Sequence[str]
) -> JetStreamContext.PullSubscription:
    config = ConsumerConfig(
        durable_name=name,
        filter_subject=subjects[0] if len(subjects) == 1 else None,
        filter_subjects=list(subjects) if len(subjects) > 1 else None,
        ack_policy=AckPolicy.EXPLICIT,
        max_deliver=-1,
    )
    await js.add_consumer(STREAM, config)
    return await js.pull_subscribe_bind(durable=name, stream=STREAM)


async def _publish_all(js: JetStreamContext, messages: Sequence[tuple[str, str, bytes]]) -> None:
    acks = [
        await js.publish_async(subject, body, headers={"Nats-Msg-Id": msg_id})
        for subject, msg_id, body in messages
    ]
    await asyncio.gather(*acks)


# ------------------------------------------------------------------ roles


async def _market(url: str, cycles: int, out: Connection) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    state = await js.key_value("floor_state")
    completed = await _durable(js, "market", ["floor.cycle.completed"])
    began = 0.0
    for cycle in range(cycles):
        lot = [
            (
                f"floor.market.tick.{cycle}.{bar}",
                f"tick:{cycle}:{bar}",
                _payload(TICK_BYTES, cycle=cycle, bar=bar),
            )
            for bar in range(BARS_PER_CYCLE)
        ]
        lot += [
            ("floor.cycle.started", f"start:{cycle}", _payload(300, cycle=cycle)),
            ("floor.market.snapshot", f"snapshot:{cycle}", _payload(SNAPSHOT_BYTES, cycle=cycle)),
        ]
        await _publish_all(js, lot)
        # The state's write needs no wait of its own: it goes alongside the cycle's.
        _, (done,) = await asyncio.gather(
            state.put("cycle", _payload(300, cycle=cycle)), completed.fetch(1, timeout=WAIT)
        )
        await done.ack()
        if cycle == 0:
            began = time.monotonic()  # from the first completion: start-up left out
            out.send(("first", 0.0))
        elif cycle % PROGRESS_EVERY == 0:
            out.send(("progress", float(cycle)))
    out.send(("done", time.monotonic() - began))
    await nc.close()


async def _agent_host(url: str, agents: Sequence[str]) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    portfolios: dict[int, asyncio.Future[Msg]] = {}

    async def portfolio(cycle: int) -> None:
        # The first hosted agent to get the snapshot asks for every hosted agent's.
        if cycle not in portfolios:
            query = json.dumps({"cycle": cycle, "agents": list(agents)}).encode()
            portfolios[cycle] = asyncio.ensure_future(
                nc.request("floor.ledger.portfolios", query, timeout=WAIT)
            )
            portfolios.pop(cycle - 2, None)
        await portfolios[cycle]

    async def decide(agent: str) -> None:
        snapshots = await _durable(js, f"agent-{agent}", ["floor.market.snapshot"])
        while True:
            (snapshot,) = await snapshots.fetch(1, timeout=3600)
            cycle = _cycle_of(snapshot)
            await portfolio(cycle)
            body = _payload(PROPOSAL_BYTES, cycle=cycle, agent=agent)
            await js.publish(
                f"floor.agent.proposal.{agent}",
                body,
                headers={"Nats-Msg-Id": f"proposal:{cycle}:{agent}"},
            )
            await snapshot.ack()

    await asyncio.gather(*(decide(agent) for agent in agents))


async def _risk(url: str) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    proposals = await _durable(js, "risk", ["floor.agent.proposal.*"])
    while True:
        ready = await proposals.fetch(1, timeout=3600)
        ready += await ready_messages(proposals, 15)
        verdicts = [
            (f"floor.risk.verdict.{p.subject.rsplit('.', 1)[1]}", f"verdict:{_msg_id(p)}", p.data)
            for p in ready
        ]
        await _publish_all(js, verdicts)
        for proposal in ready:
            await proposal.ack()


async def _ledger(url: str, database: str) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    db = await asyncpg.connect(database)
    agents = line_up_agents()
    await db.executemany(
        "INSERT INTO accounts VALUES ($1, 100, 100, -1) ON CONFLICT DO NOTHING",
        [(agent,) for agent in agents],
    )
    books = await _durable(
        js,
        "ledger",
        [
            "floor.market.tick.>",
            "floor.cycle.started",
            "floor.market.snapshot",
            "floor.risk.verdict.*",
        ],
    )
    booked = asyncio.Condition()
    lot_booked = -1
    # The one writer of the accounts holds them: its answers and its bookings read memory.
    accounts = {row["agent"]: dict(row) for row in await db.fetch("SELECT * FROM accounts")}

    async def answer(msg: Msg) -> None:
        cycle = _cycle_of(msg)
        async with booked:
            await booked.wait_for(lambda: lot_booked >= cycle)
        asked = [accounts[agent] for agent in json.loads(msg.data)["agents"]]
        await msg.respond(_payload(1000 * len(asked), cycle=cycle))

    await nc.subscribe("floor.ledger.portfolios", cb=answer)
    held: list[Msg] = []
    while True:
        held += await books.fetch(1, timeout=3600)
        held += await ready_messages(books, 15)
        if held[-1].subject == "floor.market.snapshot":
            await _book_lot(db, held)
            async with booked:
                lot_booked = _cycle_of(held[-1])
                booked.notify_all()
        elif sum(1 for m in held if m.subject.startswith("floor.risk.")) == len(agents):
            events = await _book_verdicts(db, held, agents)
            await _relay(js, db, events)
        else:
            continue
        for one in held:
            await one.ack()
        held = []


# Each booking is one statement (its own transaction): the fewest round trips a booking
# can take.
BOOK_LOT = """
WITH claim AS (INSERT INTO claimed SELECT unnest($1::text[]) ON CONFLICT DO NOTHING),
     marked AS (UPDATE accounts SET equity = equity, cycle = $2 WHERE agent = ANY($3::text[]))
INSERT INTO cycles (id, prices) VALUES ($2, $4) ON CONFLICT DO NOTHING
"""

BOOK_VERDICTS = """
WITH claim AS (INSERT INTO claimed SELECT unnest($1::text[]) ON CONFLICT DO NOTHING),
     decided AS (INSERT INTO decisions
                 SELECT unnest($2::text[]), $3, unnest($4::text[]), $5::jsonb
                 ON CONFLICT DO NOTHING),
     snapped AS (INSERT INTO equity SELECT unnest($4::text[]), $3, 100 ON CONFLICT DO NOTHING),
     booked AS (UPDATE accounts SET balance = balance, cycle = $3 WHERE agent = ANY($4::text[])),
     closed AS (UPDATE cycles SET completed = true WHERE id = $3)
INSERT INTO outbox (subject, msg_id, body)
SELECT unnest($6::text[]), unnest($7::text[]), $8
RETURNING id, subject, msg_id, body
"""


async def _book_lot(db: asyncpg.Connection, held: Sequence[Msg]) -> None:
    cycle = _cycle_of(held[-1])
    prices = json.dumps({"BTCUSDT": "90000.1"})
    await db.execute(BOOK_LOT, [_msg_id(m) for m in held], cycle, list(line_up_agents()), prices)


async def _book_verdicts(
    db: asyncpg.Connection, held: Sequence[Msg], agents: Sequence[str]
) -> list[asyncpg.Record]:
    """Book a cycle's verdicts; returns its outbox rows."""
    cycle = _cycle_of([m for m in held if m.subject.startswith("floor.risk.")][-1])
    events = [(f"floor.ledger.decision.{agent}", f"decision:{cycle}:{agent}") for agent in agents]
    events += [
        (f"floor.ledger.event.{n}", f"event:{cycle}:{n}")
        for n in range(EVENTS_PER_CYCLE - len(agents) - 1)
    ]
    events += [("floor.cycle.completed", f"completed:{cycle}")]
    return list(
        await db.fetch(
            BOOK_VERDICTS,
            [_msg_id(m) for m in held],
            [f"{cycle}:{agent}" for agent in agents],
            cycle,
            list(agents),
            json.dumps({"action": "HOLD", "reasoning": "x" * 300}),
            [subject for subject, _ in events],
            [msg_id for _, msg_id in events],
            _payload(600, cycle=cycle),
        )
    )


async def _relay(js: JetStreamContext, db: asyncpg.Connection, rows: Sequence[Any]) -> None:
    """Publish the outbox rows a booking wrote and returned (committed: no read of the
    unsent rows, which a relay needs only after a restart), then mark them sent in one
    statement that commits without waiting for the disk, as the ledger's relay marks."""
    await _publish_all(js, [(r["subject"], r["msg_id"], r["body"]) for r in rows])
    await db.execute(
        "UPDATE outbox SET published_at = now() "
        "FROM (SELECT set_config('synchronous_commit', 'off', true)) AS relaxed "
        "WHERE id = ANY($1::bigint[])",
        [r["id"] for r in rows],
    )


async def _gateway(url: str) -> None:
    nc = await nats.connect(url)
    received = 0

    async def on_event(_: Msg) -> None:
        nonlocal received
        received += 1

    await nc.subscribe("floor.ledger.>", cb=on_event)
    await nc.subscribe("floor.cycle.>", cb=on_event)
    await nc.subscribe("floor.market.snapshot", cb=on_event)
    await asyncio.Event().wait()


def _role(name: str, *args: Any) -> None:
    roles: dict[str, Callable[..., Coroutine[Any, Any, None]]] = {
        "market": _market,
        "agents": _agent_host,
        "risk": _risk,
        "ledger": _ledger,
        "gateway": _gateway,
    }
    uvloop.run(roles[name](*args))


# ------------------------------------------------------------------ the run


async def _prepare(url: str, database: str) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(
        StreamConfig(
            name=STREAM, subjects=["floor.>"], storage=StorageType.FILE, duplicate_window=120.0
        )
    )
    await js.create_key_value(KeyValueConfig(bucket="floor_state", storage=StorageType.FILE))
    await nc.close()
    db = await asyncpg.connect(database)
    await db.execute(SCHEMA)
    await db.close()


def run(cycles: int = 3000) -> Floor:
    """Play ``cycles`` cycles of the floor on its own NATS and Postgres."""
    from devstack.nats_server import EmbeddedNats  # the roles' processes need neither
    from devstack.postgres import EmbeddedPostgres

    root = Path(tempfile.mkdtemp(prefix="arena-bench-floor-"))
    server = EmbeddedNats(root / "nats")
    postgres = EmbeddedPostgres(root / "postgres", keep=False)
    spawn = multiprocessing.get_context("spawn")
    children: list[tuple[str, Any]] = []
    try:
        server.start()
        postgres.start()
        database = postgres.ensure_database("floor")
        asyncio.run(_prepare(server.url, database))
        receive, send = spawn.Pipe(duplex=False)
        for name, args in [
            ("ledger", (server.url, database)),
            ("risk", (server.url,)),
            ("gateway", (server.url,)),
            *[("agents", (server.url, group)) for group in LINEUP],
        ]:
            child = spawn.Process(target=_role, args=(name, *args), daemon=True)
            child.start()
            children.append((name if name != "agents" else f"agents x{len(args[1])}", child))
        # Every consumer exists before the first lot: none misses a message.
        _wait_for_consumers(server.url, len(line_up_agents()) + 2)
        market = spawn.Process(target=_role, args=("market", server.url, cycles, send), daemon=True)
        market.start()
        children.append(("market", market))
        _next(receive, "first", children, 120.0)
        watched = [(name, psutil.Process(child.pid)) for name, child in children]
        watched.append(("nats-server", psutil.Process(server.pid)))

        def cpu() -> dict[str, float]:
            return {**process_seconds(watched), "postgres": postgres_seconds(postgres.data_dir)}

        before = cpu()
        seconds = _next(receive, "done", children, cycles * 0.5 + 60, cycles)
        after = cpu()
        measured = cycles - 1
        spent = {name: after[name] - before.get(name, 0.0) for name in after}
        decisions, unsent = asyncio.run(_booked(database))
        return Floor(
            cycles=measured,
            seconds=float(seconds),
            decisions=decisions,
            unsent=unsent,
            cpu_ms_per_cycle={
                name: round(1000 * value / measured, 2)
                for name, value in sorted(spent.items(), key=lambda kv: -kv[1])
            },
        )
    finally:
        for _, child in children:
            child.kill()
            child.join(5)
        server.stop()
        postgres.stop()
        shutil.rmtree(root, ignore_errors=True)


def _next(
    receive: Connection,
    wanted: str,
    children: Sequence[tuple[str, Any]],
    timeout: float,
    cycles: int = 0,
) -> float:
    """The market's next report of kind ``wanted`` (its progress printed on the way); a
    role that exits or a market that falls silent for ``timeout`` ends the run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, child in children:
            if not child.is_alive():
                raise RuntimeError(f"the floor's {name} process exited ({child.exitcode})")
        if not receive.poll(0.5):
            continue
        kind, value = receive.recv()
        if kind == wanted:
            return float(value)
        print(f"floor: {int(value):,} of {cycles:,} cycles", file=sys.stderr, flush=True)
    raise RuntimeError(f"the floor's market did not report {wanted!r} within {timeout:.0f} s")


def _wait_for_consumers(url: str, wanted: int, timeout: float = 60.0) -> None:
    async def consumers() -> int:
        nc = await nats.connect(url)
        try:
            return len(await nc.jetstream().consumers_info(STREAM))
        finally:
            await nc.close()

    deadline = time.monotonic() + timeout
    while asyncio.run(consumers()) < wanted:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the floor's {wanted} consumers were not ready in {timeout}s")
        time.sleep(0.05)


async def _booked(database: str, timeout: float = 30.0) -> tuple[int, int]:
    """The decisions booked and the events left unsent, once the relay has sent them all
    (its last mark may come after the market saw the last completion)."""
    db = await asyncpg.connect(database)
    try:
        deadline = time.monotonic() + timeout
        while True:
            unsent = await db.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            if unsent == 0 or time.monotonic() > deadline:
                return await db.fetchval("SELECT count(*) FROM decisions"), unsent
            await asyncio.sleep(0.05)
    finally:
        await db.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cycle_floor", description=__doc__)
    parser.add_argument("--cycles", type=int, default=3000)
    args = parser.parse_args()
    print(json.dumps(run(args.cycles).as_dict(), indent=1))


if __name__ == "__main__":
    main()
