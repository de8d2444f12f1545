"""A local server speaking the OpenAI Chat Completions wire format (``POST /v1/chat/completions``).

DeepSeek and the OpenAI-compatible servers speak the same; DeepSeek's reasoner adds
``reasoning_content`` beside the answer.
"""

from __future__ import annotations

import itertools
from typing import Any

from tests.fakes.scripted_http import Reply, ScriptedServer

_ids = itertools.count(1)


def completion(
    text: str | None,
    *,
    prompt_tokens: int = 1100,
    completion_tokens: int = 120,
    model: str = "gpt-test",
    reasoning_content: str | None = None,
) -> Reply:
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
    if reasoning_content is not None:
        message["reasoning_content"] = reasoning_content
    return Reply(
        200,
        {
            "id": f"chatcmpl-{next(_ids):06d}",
            "object": "chat.completion",
            "created": 1735732800,
            "model": model,
            "choices": [
                {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        },
        headers={"x-request-id": "req_fake"},
    )


ERRORS = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("insufficient_permissions", None),
    429: ("rate_limit_exceeded", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}


def error(status: int, text: str | None = None) -> Reply:
    kind, code = ERRORS.get(status, ("server_error", None))
    return Reply(
        status,
        {"error": {"message": text or kind, "type": kind, "param": None, "code": code}},
    )


class FakeOpenAI(ScriptedServer):
    def __init__(self, default: Reply | None = None) -> None:
        super().__init__(
            default or completion('{"reasoning": "calm", "actions": [{"action": "HOLD"}]}')
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"
