"""Claude through the ``anthropic`` SDK's Messages API.

No ``temperature`` is sent: the SDK pinned here no longer takes it for Messages.
"""

from __future__ import annotations

from typing import Any

import anthropic

from services.agent.providers.base import (
    Completion,
    Conversation,
    Turn,
    sdk_errors,
)
from services.agent.scrub import Scrubber


class AnthropicProvider:
    name = "anthropic"
    billable = True

    def __init__(
        self,
        *,
        api_key: str,
        model: str,
        max_tokens: int,
        base_url: str | None,
        scrub: Scrubber | None = None,
    ) -> None:
        # Retries are ours (counted, logged, bounded by the cycle deadline), not the SDK's.
        self._client = anthropic.AsyncAnthropic(api_key=api_key, base_url=base_url, max_retries=0)
        self._model = model
        self._max_tokens = max_tokens
        self._scrub = scrub or Scrubber([api_key])

    async def complete(self, conversation: Conversation, timeout: float) -> Completion:
        with sdk_errors(anthropic, timeout, self._scrub):
            message = await self._client.messages.create(
                model=self._model,
                max_tokens=self._max_tokens,
                system=conversation.system,
                messages=[_message(t) for t in conversation.turns],
                timeout=timeout,
            )
        text = "".join(getattr(b, "text", "") for b in message.content if b.type == "text")
        thinking = "\n".join(
            getattr(b, "thinking", "") for b in message.content if b.type == "thinking"
        )
        return Completion(
            text=text,
            model=message.model or self._model,
            prompt_tokens=message.usage.input_tokens,
            completion_tokens=message.usage.output_tokens,
            thinking=thinking or None,
        )

    async def close(self) -> None:
        await self._client.close()


def _message(turn: Turn) -> Any:
    # The SDK's TypedDict union cannot tell a user turn from an assistant one statically.
    return {"role": turn.role, "content": turn.content}
