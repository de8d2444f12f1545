"""The portfolios of the agents one process hosts, asked for together once a cycle.

Each hosted agent decides on its portfolio as the cycle's snapshot left the books; asked
one by one, that is a question to the ledger per agent per cycle. Instead the first of
them to ask for a cycle's asks for every hosted agent's in one question, and the others
take theirs from its answer (waiting for it while it is under way).

An answer is taken once: an agent asking again for the same cycle (its snapshot delivered
again) asks afresh, for itself alone, as does one asking after the shared question failed
(the ledger away: each asker retries as it would its own question). Only the latest
cycles' questions are kept.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from services.common.bus import BusError
from services.common.contracts import Portfolio, Portfolios, PortfoliosQuery

Ask = Callable[[PortfoliosQuery, float], Awaitable[Portfolios]]
"""Asks the ledger (the query, a timeout in seconds); raises BusError."""

KEPT_CYCLES = 4


@dataclass
class _Question:
    agents: frozenset[str]
    answer: asyncio.Task[dict[str, Portfolio]]
    taken: set[str] = field(default_factory=set)

    def offers(self, agent_id: str) -> bool:
        """Whether this question's answer is (or will be) ``agent_id``'s to take."""
        if agent_id not in self.agents or agent_id in self.taken:
            return False
        failed = self.answer.done() and (
            self.answer.cancelled() or self.answer.exception() is not None
        )
        return not failed


class SharedPortfolios:
    def __init__(self, agent_ids: Sequence[str], ask: Ask, *, kept: int = KEPT_CYCLES) -> None:
        self._agents = tuple(agent_ids)
        self._ask = ask
        self._kept = kept
        self._questions: dict[str, _Question] = {}  # by cycle, oldest first

    async def portfolio(self, agent_id: str, cycle_id: str, timeout: float) -> Portfolio:
        """``agent_id``'s portfolio for ``cycle_id`` (BusError: the ledger did not give it)."""
        question = self._questions.get(cycle_id)
        if question is None:
            question = self._question(self._agents, cycle_id, timeout)
            self._questions[cycle_id] = question
            while len(self._questions) > self._kept:
                del self._questions[next(iter(self._questions))]
        elif not question.offers(agent_id):
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
        # Its failure is every waiting asker's to handle; none left waiting is no error.
        answer.add_done_callback(lambda task: task.cancelled() or task.exception())
        return _Question(frozenset(agents), answer)
