"""The delivery policy on its own: what becomes of a message after its handler ran."""

from __future__ import annotations

import asyncpg
import pytest
from nats import errors as nats_errors

from services.common.bus_errors import PermanentError, TransientError, Unavailable
from services.common.delivery import Ack, DeadLetter, DeliveryPolicy, Retry, is_transient

POLICY = DeliveryPolicy(retry_delays=(0.1, 1.0, 5.0), max_failures=3)


def test_handled_is_acked() -> None:
    assert POLICY.settle(None, 1) == Ack()


def test_a_permanent_error_is_dead_lettered_at_once() -> None:
    assert POLICY.settle(PermanentError("names another agent"), 1) == DeadLetter(
        "rejected", "names another agent"
    )


@pytest.mark.parametrize(
    "error",
    [
        Unavailable("arena.ledger.query.portfolio", "timed out after 2s"),
        TransientError("Postgres unavailable"),
        ConnectionRefusedError(111, "refused"),
        TimeoutError(),
        nats_errors.TimeoutError(),
        nats_errors.NoRespondersError(),
        nats_errors.ConnectionClosedError(),
    ],
)
def test_an_unavailable_dependency_is_retried_for_as_long_as_it_takes(error: Exception) -> None:
    assert is_transient(error)
    for delivery in (1, 3, 50, 10_000):
        settlement = POLICY.settle(error, delivery)
        assert isinstance(settlement, Retry)
        assert settlement.transient
    assert POLICY.settle(error, 10_000) == Retry(5.0, transient=True)


def test_what_an_error_was_raised_from_counts() -> None:
    try:
        try:
            raise ConnectionResetError("peer went away")
        except ConnectionResetError as cause:
            raise RuntimeError("query failed") from cause
    except RuntimeError as wrapped:
        assert is_transient(wrapped)
    assert not is_transient(asyncpg.UniqueViolationError("duplicate key"))


def test_a_permanent_error_wins_over_a_transient_cause() -> None:
    try:
        try:
            raise TimeoutError
        except TimeoutError as cause:
            raise PermanentError("invalid after all") from cause
    except PermanentError as error:
        assert not is_transient(error)
        assert POLICY.settle(error, 1) == DeadLetter("rejected", "invalid after all")


def test_an_unforeseen_error_is_retried_a_few_times_then_dead_lettered() -> None:
    bug = KeyError("missing")
    assert POLICY.settle(bug, 1) == Retry(0.1, transient=False)
    assert POLICY.settle(bug, 2) == Retry(1.0, transient=False)
    assert POLICY.settle(bug, 3) == DeadLetter("max_deliver", repr(bug))


def test_back_off_grows_then_stays_at_the_last_delay() -> None:
    assert [POLICY.delay(n) for n in (0, 1, 2, 3, 4, 99)] == [0.1, 0.1, 1.0, 5.0, 5.0, 5.0]


def test_a_policy_without_delays_is_refused() -> None:
    with pytest.raises(ValueError, match="retry_delays"):
        DeliveryPolicy(retry_delays=())
    with pytest.raises(ValueError, match="max_failures"):
        DeliveryPolicy(max_failures=0)


def test_undecodable_input_is_dead_lettered_as_malformed() -> None:
    assert DeliveryPolicy.malformed("cycle_id: field required") == DeadLetter(
        "malformed", "cycle_id: field required"
    )
