"""Which replay cycles still wait for verdicts: the books consumer waits for a replay
cycle's missing verdicts, never for a live cycle's, nor for anything but a verdict."""

from __future__ import annotations

from nats.aio.msg import Msg

from services.common import subjects
from services.common.bus import message_id
from services.common.consumers import Delivery, Item
from services.common.contracts import Message, Verdict
from services.common.dead_letters import MSG_ID
from services.ledger.gathering import GATHER_SECONDS, KEPT_CYCLES, CycleGathering, verdict_of
from tests.builders import NOW, cycle_started, hold, verdict

AGENTS = ("alpha", "beta", "gamma")


def _verdict(cycle_id: str, agent: str) -> Verdict:
    return verdict(cycle_id, agent, NOW, (hold(), ()))


def _msg(subject: str, natural_id: str) -> Msg:
    """A message as the bus delivers it: its subject and its id header."""
    return Msg(None, subject=subject, headers={MSG_ID: message_id(subject, natural_id)})  # type: ignore[arg-type]


def _verdict_msg(cycle_id: str, agent: str) -> Msg:
    return _msg(subjects.decision_verdict(agent), _verdict(cycle_id, agent).verdict_id)


def _item(message: Message, subject: str) -> Item:
    return message, Delivery(subject, "id", 1, 1)


def _started(cycle_id: str, *, data_time: bool = True) -> Item:
    started = cycle_started(cycle_id, 1, NOW, AGENTS).model_copy(update={"data_time": data_time})
    return _item(started, subjects.CYCLE_STARTED)


def _booked_verdict(cycle_id: str, agent: str) -> Item:
    return _item(_verdict(cycle_id, agent), subjects.decision_verdict(agent))


def test_a_verdict_message_names_its_cycle_and_agent() -> None:
    # Cycle ids of a replay hold dashes; the agent is the subject's last token.
    assert verdict_of(_verdict_msg("20250101T000500Z-00002a", "beta")) == (
        "20250101T000500Z-00002a",
        "beta",
    )
    assert verdict_of(_msg(subjects.CYCLE_STARTED, "c1")) is None
    assert verdict_of(_msg(subjects.decision_verdict("beta"), "c1:alpha")) is None  # not its own
    assert verdict_of(Msg(None, subject=subjects.decision_verdict("beta"))) is None  # type: ignore[arg-type]


def test_a_replay_cycles_verdicts_are_waited_for_until_every_agent_is_in() -> None:
    gathering = CycleGathering()
    gathering.booked([_started("c1")])
    held = [_verdict_msg("c1", "alpha")]
    assert gathering.wait_for_more(held) == GATHER_SECONDS
    held.append(_verdict_msg("c1", "gamma"))
    assert gathering.wait_for_more(held) == GATHER_SECONDS
    held.append(_verdict_msg("c1", "beta"))
    assert gathering.wait_for_more(held) == 0.0
    # Booked without beta's (the wait ran out): then only beta's is waited for.
    gathering.booked([_booked_verdict("c1", "alpha"), _booked_verdict("c1", "gamma")])
    assert gathering.wait_for_more([_verdict_msg("c1", "beta")]) == 0.0
    gathering.booked([_started("c2")])
    gathering.booked([_booked_verdict("c2", "alpha")])
    assert gathering.wait_for_more([_verdict_msg("c2", "beta")]) == GATHER_SECONDS
    assert gathering.wait_for_more([_verdict_msg("c2", "beta"), _verdict_msg("c2", "gamma")]) == 0


def test_nothing_is_waited_for_but_a_started_replay_cycles_verdicts() -> None:
    gathering = CycleGathering()
    gathering.booked([_started("live", data_time=False), _started("replay")])
    assert gathering.wait_for_more([_verdict_msg("live", "alpha")]) == 0.0  # a live cycle
    assert gathering.wait_for_more([_verdict_msg("unseen", "alpha")]) == 0.0  # before a restart
    assert gathering.wait_for_more([_msg(subjects.CYCLE_STARTED, "c9")]) == 0.0
    assert gathering.wait_for_more([]) == 0.0
    # Held messages that end with something else than a verdict are booked now.
    held = [_verdict_msg("replay", "alpha"), _msg(subjects.CYCLE_STARTED, "c9")]
    assert gathering.wait_for_more(held) == 0.0
    # A completed cycle (its deadline passed) is not waited for any more.
    gathering.completed("replay")
    assert gathering.wait_for_more([_verdict_msg("replay", "alpha")]) == 0.0


def test_only_the_latest_cycles_are_remembered() -> None:
    gathering = CycleGathering()
    gathering.booked([_started(f"c{n}") for n in range(KEPT_CYCLES + 5)])
    assert gathering.wait_for_more([_verdict_msg("c0", "alpha")]) == 0.0
    assert gathering.wait_for_more([_verdict_msg(f"c{KEPT_CYCLES + 4}", "alpha")]) > 0
