"""An LLM as a trader: prompt, call (with retries and a breaker), parse, ask again once.

Whatever happens it returns an answer: the parsed actions, or a HOLD carrying the error.
Every attempt becomes an :class:`LlmCall` record with its tokens and estimated cost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from services.agent.circuit import CircuitBreaker
from services.agent.costs import call_cost, total_usage
from services.agent.parsing import ParseError, parse_answer
from services.agent.prompt import Prompt, build_prompt
from services.agent.providers.base import Completion, Conversation, Provider, ProviderError
from services.agent.strategy import HOLD, Answer
from services.agent.trader import Outcome, TraderAnswer
from services.common.clock import Clock
from services.common.contracts import PARSE_ERROR_PREFIX, LlmCall, MarketSnapshot, Portfolio
from services.common.lineup import AgentSpec
from services.common.settings import TradingLimits

log = logging.getLogger(__name__)

# Stop calling when less than this is left before the deadline: the decision must still go out.
DEADLINE_MARGIN_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0
REASK = (
    "Your answer could not be used: {error}. Reply again with only the JSON object in the "
    "format given in the instructions, nothing else."
)

Sleep = Callable[[float], Awaitable[None]]


@dataclass
class _Cycle:
    """What one cycle's calls have gathered so far."""

    snapshot: MarketSnapshot
    delivery: int
    calls: list[LlmCall]


class LlmTrader:
    def __init__(
        self,
        *,
        spec: AgentSpec,
        provider: Provider,
        limits: TradingLimits,
        symbols: Sequence[str],
        clock: Clock,
        breaker: CircuitBreaker,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._spec = spec
        self._provider = provider
        self._limits = limits
        self._symbols = tuple(symbols)
        self._clock = clock
        self._breaker = breaker
        self._sleep = sleep
        self._auth_failure: str | None = None

    @property
    def disabled_reason(self) -> str | None:
        return self._auth_failure or self._breaker.open_reason()

    @property
    def reads_candles(self) -> bool:
        return True  # the prompt shows recent closes and a few hours of context

    async def close(self) -> None:
        await self._provider.close()

    async def decide(
        self, snapshot: MarketSnapshot, portfolio: Portfolio, *, delivery: int = 1
    ) -> TraderAnswer:
        reason = self.disabled_reason
        if reason is not None:
            return TraderAnswer.hold(Outcome.DISABLED, f"disabled: {reason}")
        prompt = build_prompt(snapshot, portfolio, self._limits, self._symbols)
        cycle = _Cycle(snapshot, delivery, [])
        conversation = Conversation.of(prompt)
        parse_failures = 0
        while True:
            try:
                completion = await self._call(conversation, cycle)
            except ProviderError as exc:
                error = f"provider error: {exc}"
                if exc.kind == "auth":
                    self._auth_failure = f"{self._provider.name} rejected the API key ({exc})"
                    log.error("agent %s disabled: %s", self._spec.id, self._auth_failure)
                self._breaker.record_failure(str(exc))
                return self._answer(cycle, prompt, Outcome.PROVIDER_ERROR, error=error)
            self._breaker.record_success()
            try:
                parsed = parse_answer(completion.text)
            except ParseError as exc:
                parse_failures += 1
                log.warning("agent %s: unusable answer: %s", self._spec.id, exc)
                first_try = len(conversation.turns) == 1
                if first_try and self._spec.reask_on_parse_error and self._time_left(cycle) > 0:
                    conversation = conversation.then(completion.text, REASK.format(error=exc))
                    continue
                return self._answer(
                    cycle,
                    prompt,
                    Outcome.PARSE_ERROR,
                    error=f"{PARSE_ERROR_PREFIX}{exc}",
                    completion=completion,
                    parse_failures=parse_failures,
                )
            return self._answer(
                cycle,
                prompt,
                Outcome.DECIDED,
                completion=completion,
                parse_failures=parse_failures,
                parsed=parsed,
            )

    def _time_left(self, cycle: _Cycle) -> float:
        remaining = (cycle.snapshot.decision_deadline - self._clock.now()).total_seconds()
        return min(self._spec.timeout_seconds, remaining - DEADLINE_MARGIN_SECONDS)

    async def _call(self, conversation: Conversation, cycle: _Cycle) -> Completion:
        """One question, retried on 429/5xx/529 with back-off while the deadline allows."""
        attempt = 0
        while True:
            attempt += 1
            timeout = self._time_left(cycle)
            if timeout <= 0:
                raise ProviderError("the decision deadline came before an answer", kind="timeout")
            started = self._clock.monotonic()
            called_at = self._clock.now()
            try:
                completion = await asyncio.wait_for(
                    self._provider.complete(conversation, timeout), timeout + 1
                )
            except TimeoutError:
                error = ProviderError(f"no answer within {timeout:.1f}s", kind="timeout")
                self._record(cycle, called_at, started, attempt, error=error)
                raise error from None
            except ProviderError as exc:
                self._record(cycle, called_at, started, attempt, error=exc)
                retries_left = attempt <= self._spec.max_retries
                if exc.kind != "retryable" or not retries_left:
                    raise
                delay = min(
                    self._spec.retry_backoff_seconds * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS
                )
                if delay >= self._time_left(cycle):
                    raise
                log.info("agent %s: %s; retrying in %.2fs", self._spec.id, exc, delay)
                await self._sleep(delay)
                continue
            self._record(cycle, called_at, started, attempt, completion=completion)
            return completion

    def _record(
        self,
        cycle: _Cycle,
        called_at: datetime,
        started: float,
        attempt: int,
        *,
        completion: Completion | None = None,
        error: ProviderError | None = None,
    ) -> None:
        if not self._provider.billable:
            return
        prompt_tokens = completion.prompt_tokens if completion else 0
        completion_tokens = completion.completion_tokens if completion else 0
        # The delivery number keeps a redelivered snapshot's calls (an agent restarted
        # mid-cycle pays the model again) from colliding with, and erasing, the first ones.
        call_id = ":".join(
            (
                cycle.snapshot.cycle_id,
                self._spec.id,
                f"d{cycle.delivery}",
                str(len(cycle.calls) + 1),
            )
        )
        cycle.calls.append(
            LlmCall(
                call_id=call_id,
                agent_id=self._spec.id,
                cycle_id=cycle.snapshot.cycle_id,
                provider=self._provider.name,
                model=completion.model if completion and completion.model else self._spec.model,
                response_time_ms=round((self._clock.monotonic() - started) * 1000),
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                estimated_cost=call_cost(self._spec, prompt_tokens, completion_tokens),
                success=error is None,
                error=str(error) if error else None,
                called_at=called_at,
                attempt=attempt,
                status_code=error.status_code if error else 200,
            )
        )

    def _answer(
        self,
        cycle: _Cycle,
        prompt: Prompt,
        outcome: Outcome,
        *,
        error: str | None = None,
        completion: Completion | None = None,
        parse_failures: int = 0,
        parsed: Answer | None = None,
    ) -> TraderAnswer:
        calls = tuple(cycle.calls)
        thinking = parsed.thinking if parsed else None
        return TraderAnswer(
            actions=(parsed.actions if parsed else ()) or (HOLD,),
            outcome=outcome,
            reasoning=parsed.reasoning if parsed else "",
            error=error,
            prompt=prompt,
            raw_response=completion.text if completion else None,
            thinking=thinking or (completion.thinking if completion else None),
            usage=total_usage(calls) if calls else None,
            calls=calls,
            parse_failures=parse_failures,
        )
