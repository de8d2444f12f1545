"""What a call cost, from the line-up's prices per million tokens."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from services.common.contracts import LlmCall, Usage
from services.common.lineup import AgentSpec

MILLION = Decimal(1_000_000)


def call_cost(spec: AgentSpec, prompt_tokens: int, completion_tokens: int) -> Decimal:
    return (
        spec.price_input_per_mtok * prompt_tokens + spec.price_output_per_mtok * completion_tokens
    ) / MILLION


def total_usage(calls: Iterable[LlmCall]) -> Usage:
    prompt = completion = 0
    cost = Decimal(0)
    for call in calls:
        prompt += call.prompt_tokens
        completion += call.completion_tokens
        cost += call.estimated_cost
    return Usage(prompt_tokens=prompt, completion_tokens=completion, cost_usd=cost)
