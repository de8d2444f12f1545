"""The bus against a real nats-server: ack after success, retries, dead letters, requests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

import pytest
from nats.aio.msg import Msg
from prometheus_client import CollectorRegistry

from services.common import channels, subjects
from services.common.bus import (
    Bus,
    BusMetrics,
    ConsumerSpec,
    Delivery,
    NotFound,
    PermanentError,
    RemoteError,
    TransientError,
    Unavailable,
    redact_url,
)
from services.common.consumers import Item
from services.common.contracts import (
    AccountsQuery,
    CycleStarted,
    ErrorReply,
    PortfolioQuery,
    SchedulerCommand,
    SchedulerStatus,
)
from tests.builders import scheduler_status
from tests.support import eventually, publish_raw


def _cycle(n: int) -> CycleStarted:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    return CycleStarted(
        cycle_id=f"c{n}", sequence=n, started_at=now, decision_deadline=now, symbols=("BTCUSDT",)
    )


async def _bus(nats_url: str, name: str = "test", max_deliver: int = 3) -> tuple[Bus, BusMetrics]:
    metrics = BusMetrics(CollectorRegistry())
    bus = await Bus.connect(nats_url, name, metrics, max_deliver=max_deliver)
    await bus.ensure_streams()
    return bus, metrics


async def _consuming(
    bus: Bus, consumer: str, read: Callable[[CycleStarted, Delivery], str]
) -> list[str]:
    """What ``read`` takes of each cycle start ``consumer`` handles, as they are handled."""
    seen: list[str] = []

    async def handler(message: CycleStarted, delivery: Delivery) -> None:
        seen.append(read(message, delivery))

    await bus.consume(ConsumerSpec(consumer, subjects.CYCLE_STARTED), CycleStarted, handler)
    return seen


async def test_ensure_streams_is_idempotent(nats_url: str) -> None:
    bus, _ = await _bus(nats_url)
    await bus.ensure_streams()
    await bus.ensure_streams()
    await bus.close()


async def test_duplicate_msg_id_is_delivered_once(nats_url: str) -> None:
    bus, metrics = await _bus(nats_url)
    seen = await _consuming(bus, "t-dup", lambda _, delivery: delivery.msg_id)
    await bus.publish(subjects.CYCLE_STARTED, _cycle(1), natural_id="c1")
    await bus.publish(subjects.CYCLE_STARTED, _cycle(1), natural_id="c1")
    await bus.publish(subjects.CYCLE_STARTED, _cycle(2), natural_id="c2")
    await eventually(lambda: len(seen) == 2, what="two deliveries")
    assert seen == [f"{subjects.CYCLE_STARTED}:c1", f"{subjects.CYCLE_STARTED}:c2"]
    assert metrics.duplicates.labels("CycleStarted")._value.get() == 1
    await bus.close()


async def test_failed_handler_is_retried_then_succeeds(nats_url: str) -> None:
    bus, metrics = await _bus(nats_url)
    attempts: list[int] = []

    async def flaky(message: CycleStarted, delivery: Delivery) -> None:
        attempts.append(delivery.num_delivered)
        if delivery.num_delivered < 2:
            raise RuntimeError("database hiccup")

    spec = ConsumerSpec("t-retry", subjects.CYCLE_STARTED, retry_delays=(0.05,))
    await bus.consume(spec, CycleStarted, flaky)
    await bus.publish(subjects.CYCLE_STARTED, _cycle(1), natural_id="c1")
    await eventually(lambda: metrics.consumed.labels("t-retry")._value.get() == 1)
    assert attempts == [1, 2]
    assert metrics.redelivered.labels("t-retry")._value.get() == 1
    await bus.close()


async def test_poison_message_is_dead_lettered_and_next_one_processed(nats_url: str) -> None:
    bus, metrics = await _bus(nats_url)
    seen = await _consuming(bus, "t-poison", lambda message, _: message.cycle_id)
    dead = await bus._nc.subscribe(subjects.dead_letter("test"))
    await publish_raw(bus, subjects.CYCLE_STARTED, b"{not json")
    await bus.publish(subjects.CYCLE_STARTED, _cycle(7), natural_id="c7")
    await eventually(lambda: seen == ["c7"], what="the good message after the poison one")
    letter = await dead.next_msg(timeout=5)
    assert letter.data == b"{not json"
    assert letter.headers is not None
    assert letter.headers["Arena-Dlq-Subject"] == subjects.CYCLE_STARTED
    assert metrics.dead_lettered.labels("t-poison", "malformed")._value.get() == 1
    await bus.close()


async def test_always_failing_message_dead_letters_after_max_deliver(nats_url: str) -> None:
    bus, metrics = await _bus(nats_url, max_deliver=3)
    attempts: list[int] = []

    async def broken(message: CycleStarted, delivery: Delivery) -> None:
        attempts.append(delivery.num_delivered)
        raise RuntimeError("always")

    spec = ConsumerSpec("t-max", subjects.CYCLE_STARTED, retry_delays=(0.02,))
    await bus.consume(spec, CycleStarted, broken)
    await bus.publish(subjects.CYCLE_STARTED, _cycle(1), natural_id="c1")
    await eventually(lambda: metrics.dead_lettered.labels("t-max", "max_deliver")._value.get() == 1)
    assert attempts == [1, 2, 3]
    await bus.close()


async def test_an_unavailable_dependency_is_retried_past_max_deliver_never_dead_lettered(
    nats_url: str,
) -> None:
    bus, metrics = await _bus(nats_url, max_deliver=2)
    attempts: list[int] = []

    async def ledger_down(message: CycleStarted, delivery: Delivery) -> None:
        attempts.append(delivery.num_delivered)
        if delivery.num_delivered < 6:
            raise Unavailable(channels.LEDGER_QUERY_PORTFOLIO.subject, "timed out after 2s")

    spec = ConsumerSpec("t-transient", subjects.CYCLE_STARTED, retry_delays=(0.02,))
    await bus.consume(spec, CycleStarted, ledger_down)
    await bus.publish(subjects.CYCLE_STARTED, _cycle(1), natural_id="c1")
    await eventually(lambda: metrics.consumed.labels("t-transient")._value.get() == 1)
    assert attempts == [1, 2, 3, 4, 5, 6]
    assert metrics.retried.labels("t-transient")._value.get() == 5
    assert metrics.dead_lettered.labels("t-transient", "max_deliver")._value.get() == 0
    await bus.close()


async def _asking_a_failing_responder(nats_url: str, fault: Exception) -> Exception:
    """What a caller gets raised when the responder it asks raises ``fault``."""
    server, _ = await _bus(nats_url, "server")
    client, _ = await _bus(nats_url, "client")

    async def failing(_: AccountsQuery) -> SchedulerStatus:
        raise fault

    await server.serve(channels.LEDGER_QUERY_ACCOUNTS.subject, AccountsQuery, failing)
    try:
        with pytest.raises(Exception) as raised:
            await client.request(
                channels.LEDGER_QUERY_ACCOUNTS.subject, AccountsQuery(), SchedulerStatus
            )
    finally:
        await asyncio.gather(server.close(), client.close())
    return raised.value


async def test_a_responder_whose_dependency_is_down_answers_unavailable(nats_url: str) -> None:
    raised = await _asking_a_failing_responder(nats_url, TransientError("Postgres unavailable"))
    assert isinstance(raised, Unavailable)
    assert "Postgres unavailable" in str(raised)


async def test_request_reply_and_typed_errors(nats_url: str) -> None:
    server, _ = await _bus(nats_url, "server")
    client, _ = await _bus(nats_url, "client")

    async def status(_: SchedulerCommand) -> SchedulerStatus:
        return scheduler_status()

    async def portfolio(query: PortfolioQuery) -> SchedulerStatus:
        raise NotFound(f"no agent {query.agent_id}")

    await server.serve(channels.SCHEDULER_STATUS.subject, SchedulerCommand, status)
    await server.serve(channels.LEDGER_QUERY_PORTFOLIO.subject, PortfolioQuery, portfolio)
    reply = await client.request(
        channels.SCHEDULER_STATUS.subject, SchedulerCommand(), SchedulerStatus
    )
    assert reply == scheduler_status()
    with pytest.raises(RemoteError) as not_found:
        await client.request(
            channels.LEDGER_QUERY_PORTFOLIO.subject,
            PortfolioQuery(agent_id="nobody"),
            SchedulerStatus,
        )
    assert not_found.value.reply == ErrorReply(code="not_found", message="no agent nobody")
    with pytest.raises(Unavailable):
        await client.request(
            channels.LEDGER_QUERY_ACCOUNTS.subject, AccountsQuery(), SchedulerStatus, 0.5
        )
    await asyncio.gather(server.close(), client.close())


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_requests_are_answered_as_many_at_once_as_the_responder_allows(
    nats_url: str, concurrency: int
) -> None:
    server, _ = await _bus(nats_url, "server")
    client, _ = await _bus(nats_url, "client")
    inside, most = 0, 0
    release = asyncio.Event()

    async def slow(query: PortfolioQuery) -> PortfolioQuery:
        nonlocal inside, most
        inside += 1
        most = max(most, inside)
        await release.wait()
        inside -= 1
        return query  # echoed

    await server.serve(
        channels.LEDGER_QUERY_PORTFOLIO.subject, PortfolioQuery, slow, concurrency=concurrency
    )
    asked = [
        asyncio.create_task(
            client.request(
                channels.LEDGER_QUERY_PORTFOLIO.subject,
                PortfolioQuery(agent_id=f"a{n}"),
                PortfolioQuery,
                60,  # as long as a loaded machine needs
            )
        )
        for n in range(5)
    ]
    await eventually(lambda: inside == concurrency, what=f"{concurrency} answered at once")
    release.set()
    replies = await asyncio.gather(*asked)
    assert sorted(r.agent_id for r in replies) == [f"a{n}" for n in range(5)]
    assert most == concurrency
    await asyncio.gather(server.close(), client.close())


async def test_a_failed_settle_does_not_end_the_consumer_loop(nats_url: str) -> None:
    bus, metrics = await _bus(nats_url)
    js = bus._nc.jetstream()

    async def refuse(message: CycleStarted, delivery: Delivery) -> None:
        # The message goes to the dead letters, which have no stream to take them now.
        await js.delete_stream(subjects.DLQ_STREAM)
        raise PermanentError("refused for good")

    await bus.consume(ConsumerSpec("t-rug", subjects.CYCLE_STARTED), CycleStarted, refuse)
    await bus.publish(subjects.CYCLE_STARTED, _cycle(1), natural_id="c1")
    await eventually(
        lambda: metrics.failed.labels("t-rug")._value.get() == 1, what="the failed settle"
    )
    assert bus.consumers_alive
    await bus.close()


async def test_internal_errors_do_not_leak_details_to_the_caller(nats_url: str) -> None:
    fault = RuntimeError("password=hunter2 in a failing SQL statement")
    raised = await _asking_a_failing_responder(nats_url, fault)
    assert isinstance(raised, RemoteError)
    assert raised.reply.code == "internal"
    assert "hunter2" not in raised.reply.message
    assert raised.reply.message.startswith("server failed (log ref ")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        pytest.param("nats://127.0.0.1:4222", "nats://127.0.0.1:4222", id="plain"),
        pytest.param("nats://ledger:s3cret@nats:4222", "nats://ledger:***@nats:4222", id="user"),
        pytest.param("nats://tok3n@nats:4222", "nats://***@nats:4222", id="token"),
    ],
)
def test_logged_urls_hide_passwords(url: str, shown: str) -> None:
    assert redact_url(url) == shown


async def test_a_lingering_consumer_takes_what_came_meanwhile_in_one_batch(
    nats_url: str,
) -> None:
    bus, _ = await _bus(nats_url)
    batches: list[list[str]] = []

    async def handler(items: Sequence[Item]) -> Mapping[int, str]:
        batches.append([message.cycle_id for message, _ in items])  # type: ignore[attr-defined]
        return {}

    spec = ConsumerSpec("lingering", subjects.CYCLE_STARTED, batch=8, linger_seconds=1.0)
    try:
        await bus.consume_batches(spec, {subjects.CYCLE_STARTED: CycleStarted}, handler)
        # Published well within one pull's second: handed over together, in order.
        for n in range(1, 6):
            await bus.publish(subjects.CYCLE_STARTED, _cycle(n), f"c{n}")
        await eventually(lambda: sum(map(len, batches)) == 5, what="the five cycles")
        assert [c for batch in batches for c in batch] == ["c1", "c2", "c3", "c4", "c5"]
        assert len(batches) <= 2  # one pull, or two when the first ended as they came
        # A batch holds eight at most; the rest follows with the next pull.
        for n in range(6, 16):
            await bus.publish(subjects.CYCLE_STARTED, _cycle(n), f"c{n}")
        await eventually(lambda: sum(map(len, batches)) == 15, what="ten more")
        assert max(map(len, batches)) <= 8
        assert [c for batch in batches for c in batch] == [f"c{n}" for n in range(1, 16)]
    finally:
        await bus.close()


async def _batches_of_cycles(
    bus: Bus, spec: ConsumerSpec, wait_for_more: Callable[[Sequence[Msg]], float]
) -> list[list[str]]:
    """The batches of cycle ids ``spec``'s consumer hands over, as they are handed over."""
    batches: list[list[str]] = []

    async def handler(items: Sequence[Item]) -> Mapping[int, str]:
        batches.append([message.cycle_id for message, _ in items])  # type: ignore[attr-defined]
        return {}

    types = {subjects.CYCLE_STARTED: CycleStarted}
    await bus.consume_batches(spec, types, handler, wait_for_more=wait_for_more)
    return batches


async def test_a_consumer_told_to_wait_for_more_hands_over_what_came_in_one_batch(
    nats_url: str,
) -> None:
    bus, _ = await _bus(nats_url)
    asked: list[int] = []

    def three_at_least(held: Sequence[Msg]) -> float:
        asked.append(len(held))
        return 30.0 if len(held) < 3 else 0.0

    spec = ConsumerSpec("waiting-for-more", subjects.CYCLE_STARTED, batch=4)
    try:
        batches = await _batches_of_cycles(bus, spec, three_at_least)
        await bus.publish(subjects.CYCLE_STARTED, _cycle(1), "c1")
        await eventually(lambda: asked, what="the consumer holding c1")
        assert batches == []  # held, not handed over
        for n in (2, 3):
            await bus.publish(subjects.CYCLE_STARTED, _cycle(n), f"c{n}")
        await eventually(lambda: batches, what="the batch")
        assert batches == [["c1", "c2", "c3"]]
        # Never more than the spec's batch, however long the wait asked for.
        asked.clear()
        for n in range(4, 11):
            await bus.publish(subjects.CYCLE_STARTED, _cycle(n), f"c{n}")
        await eventually(lambda: sum(map(len, batches)) == 10, what="seven more")
        assert [len(batch) for batch in batches[1:]] in ([3, 4], [4, 3])
        assert [c for batch in batches for c in batch] == [f"c{n}" for n in range(1, 11)]
    finally:
        await bus.close()


async def test_the_wait_for_more_ends_at_its_bound(nats_url: str) -> None:
    bus, _ = await _bus(nats_url)
    spec = ConsumerSpec("waiting-in-vain", subjects.CYCLE_STARTED, batch=64)
    try:
        batches = await _batches_of_cycles(bus, spec, lambda held: 0.3)
        # Nothing more comes: c1 is handed over alone once the wait has passed.
        await bus.publish(subjects.CYCLE_STARTED, _cycle(1), "c1")
        await eventually(lambda: batches == [["c1"]], what="c1 alone")
        # More keeps coming (one every 50 ms for two seconds): the wait is counted from
        # its first ask, so the batches are handed over as it ends, not at the last one.
        for n in range(2, 42):
            await bus.publish(subjects.CYCLE_STARTED, _cycle(n), f"c{n}")
            await asyncio.sleep(0.05)  # the pace of the load, not a synchronisation
        await eventually(lambda: sum(map(len, batches)) == 41, what="forty more")
        assert len(batches) >= 4
        assert [c for batch in batches for c in batch] == [f"c{n}" for n in range(1, 42)]
    finally:
        await bus.close()
