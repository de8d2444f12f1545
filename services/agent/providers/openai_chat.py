"""Chat Completions through the ``openai`` SDK: OpenAI, DeepSeek and OpenAI-compatible servers."""

from __future__ import annotations

from typing import Any

import openai

from services.agent.providers.base import (
    Completion,
    Conversation,
    ProviderError,
    sdk_errors,
)
from services.agent.scrub import Scrubber

# The Decision's output format as a JSON schema, for models that can be held to one.
DECISION_SCHEMA: dict[str, Any] = {
    "name": "decision",
    "schema": {
        "type": "object",
        "properties": {
            "reasoning": {"type": "string"},
            "actions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "action": {"type": "string", "enum": ["BUY", "SELL", "CLOSE", "HOLD"]},
                        "symbol": {"type": ["string", "null"]},
                        "margin_usd": {"type": ["number", "null"]},
                        "leverage": {"type": ["integer", "null"]},
                        "stop_loss": {"type": ["number", "null"]},
                        "take_profit": {"type": ["number", "null"]},
                        "confidence": {"type": ["number", "null"]},
                        "invalidation": {"type": ["string", "null"]},
                    },
                    "required": ["action"],
                },
            },
        },
        "required": ["reasoning", "actions"],
    },
}


class OpenAIChatProvider:
    billable = True

    def __init__(
        self,
        *,
        name: str,
        api_key: str,
        model: str,
        max_tokens: int,
        temperature: float,
        base_url: str | None,
        json_schema: bool = False,
        scrub: Scrubber | None = None,
    ) -> None:
        self.name = name
        self._client = openai.AsyncOpenAI(api_key=api_key, base_url=base_url, max_retries=0)
        self._model = model
        self._max_tokens = max_tokens
        self._temperature = temperature
        self._json_schema = json_schema
        self._scrub = scrub or Scrubber([api_key])

    async def complete(self, conversation: Conversation, timeout: float) -> Completion:
        messages: list[Any] = [{"role": "system", "content": conversation.system}]
        messages += [{"role": t.role, "content": t.content} for t in conversation.turns]
        extra: dict[str, Any] = {}
        if self._json_schema:
            extra["response_format"] = {"type": "json_schema", "json_schema": DECISION_SCHEMA}
        with sdk_errors(openai, timeout, self._scrub):
            reply = await self._client.chat.completions.create(
                model=self._model,
                messages=messages,
                max_tokens=self._max_tokens,
                temperature=self._temperature,
                timeout=timeout,
                **extra,
            )
        if not reply.choices:
            raise ProviderError("the answer has no choices", kind="fatal", status_code=200)
        message = reply.choices[0].message
        # DeepSeek's reasoner sends its chain of thought beside the answer.
        thinking = (message.model_extra or {}).get("reasoning_content")
        usage = reply.usage
        return Completion(
            text=message.content or "",
            model=reply.model or self._model,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            thinking=thinking if isinstance(thinking, str) and thinking else None,
        )

    async def close(self) -> None:
        await self._client.close()
