"""The design's floor plays whole cycles: every agent's decision booked, every event sent."""

from __future__ import annotations

from bench import cycle_floor


def test_the_floor_books_every_cycle_of_the_line_up_and_sends_every_event() -> None:
    floor = cycle_floor.run(cycles=40)

    assert floor.cycles == 39  # timed from the first completion
    assert floor.decisions == 40 * len(cycle_floor.line_up_agents())
    assert floor.unsent == 0
    assert floor.cycles_per_second > 0
    assert {"nats-server", "postgres", "ledger", "risk", "market"} <= set(floor.cpu_ms_per_cycle)
