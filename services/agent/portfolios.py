"""The portfolios of the agents one process hosts, asked for together once a cycle.

Each hosted agent decides on its portfolio as the cycle's snapshot left the books; asked
one by one, that is a question to the ledger per agent per cycle. Instead the first of
them to ask for a cycle's asks for every hosted agent's in one question, and the others
take theirs from its answer (waiting for it while it is under way).

An answer is taken once, and only while it is fresh (``SHARED_SECONDS`` after it came:
the hosted agents get a snapshot at the same moment; a sibling asking later, after ticks
may have moved its books, is not handed an old answer). Any other asker asks afresh, for
itself alone: an agent asking again for the same cycle (its snapshot delivered again), one
asking late, one asking after the shared question failed (the ledger away: each asker
retries as it would its own question). Answers are forgotten once stale.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from services.common.bus import BusError
from services.common.contracts import Portfolio, Portfolios, PortfoliosQuery

Ask = Callable[[PortfoliosQuery, float], Awaitable[Portfolios]]
"""Asks the ledger (the query, a timeout in seconds); raises BusError."""

SHARED_SECONDS = 1.0


@dataclass
class _Question:
    agents: frozenset[str]
    answer: asyncio.Task[dict[str, Portfolio]]
    taken: set[str] = field(default_factory=set)
    answered_at: float | None = None  # the event loop's time

    def stale(self, now: float, fresh_for: float) -> bool:
        return self.answered_at is not None and now - self.answered_at > fresh_for

    def offers(self, agent_id: str, now: float, fresh_for: float) -> bool:
        """Whether this question's answer is (or will be) ``agent_id``'s to take."""
        if agent_id not in self.agents or agent_id in self.taken or self.stale(now, fresh_for):
            return False
        failed = self.answer.done() and (
            self.answer.cancelled() or self.answer.exception() is not None
        )
        return not failed


class SharedPortfolios:
    def __init__(
        self, agent_ids: Sequence[str], ask: Ask, *, shared_seconds: float = SHARED_SECONDS
    ) -> None:
        self._agents = tuple(agent_ids)
        self._ask = ask
        self._fresh_for = shared_seconds
        self._questions: dict[str, _Question] = {}  # the shared ones, by cycle
        self._asking: set[asyncio.Task[dict[str, Portfolio]]] = set()  # held until done

    async def portfolio(self, agent_id: str, cycle_id: str, timeout: float) -> Portfolio:
        """``agent_id``'s portfolio for ``cycle_id`` (BusError: the ledger did not give it)."""
        now = asyncio.get_running_loop().time()
        for cycle, asked in list(self._questions.items()):
            if asked.stale(now, self._fresh_for):
                del self._questions[cycle]
        question = self._questions.get(cycle_id)
        if question is None:
            question = self._question(self._agents, cycle_id, timeout)
            self._questions[cycle_id] = question
        elif not question.offers(agent_id, now, self._fresh_for):
            question = self._question((agent_id,), cycle_id, timeout)
        question.taken.add(agent_id)
        # Shielded: one asker giving up (cancelled) leaves the answer to the others.
        answered = await asyncio.shield(question.answer)
        found = answered.get(agent_id)
        if found is None:
            raise BusError(f"the ledger has no account for agent {agent_id!r}")
        return found

    def _question(self, agents: Sequence[str], cycle_id: str, timeout: float) -> _Question:
        query = PortfoliosQuery(agent_ids=tuple(agents), cycle_id=cycle_id)

        async def ask() -> dict[str, Portfolio]:
            reply = await self._ask(query, timeout)
            return {p.account.agent_id: p for p in reply.portfolios}

        answer = asyncio.create_task(ask(), name=f"portfolios:{cycle_id}")
        question = _Question(frozenset(agents), answer)

        def answered(task: asyncio.Task[dict[str, Portfolio]]) -> None:
            self._asking.discard(task)
            question.answered_at = asyncio.get_running_loop().time()
            # A failure is every waiting asker's to handle; none left waiting is no error.
            if not task.cancelled():
                task.exception()

        self._asking.add(answer)
        answer.add_done_callback(answered)
        return question
