"""A local server speaking the OpenAI Chat Completions wire format (``POST /v1/chat/completions``).

DeepSeek and the OpenAI-compatible servers speak the same; DeepSeek's reasoner adds
``reasoning_content`` beside the answer.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from tests.fakes.scripted_http import HOLD_ANSWER, Recorded, Reply, ScriptedServer

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


def sent_key(request: Recorded) -> str:
    return request.headers.get("authorization", "").removeprefix("Bearer ")


def masked(key: str) -> str:
    """A key as OpenAI quotes it back: its first characters and last four, stars between."""
    return f"{key[:10]}{'*' * max(len(key) - 14, 4)}{key[-4:]}"


def _key_refused(message: Callable[[str], str], kind: str, code: str) -> Reply:
    """A 401 whose message quotes the key it was sent, as ``message`` shows that key."""

    def body(request: Recorded) -> dict[str, Any]:
        error = {"message": message(sent_key(request)), "type": kind, "param": None, "code": code}
        return {"error": error}

    return Reply(401, body)


def incorrect_key() -> Reply:
    """OpenAI's 401 for a revoked or mistyped key, quoting the key it was sent, masked."""
    return _key_refused(
        lambda key: (
            f"Incorrect API key provided: {masked(key)}. You can find your API key "
            "at https://platform.openai.com/account/api-keys."
        ),
        "invalid_request_error",
        "invalid_api_key",
    )


def deepseek_incorrect_key() -> Reply:
    """DeepSeek's 401: only the last four characters, after stars."""
    return _key_refused(
        lambda key: f"Authentication Fails, Your api key: ****{key[-4:]} is invalid",
        "authentication_error",
        "invalid_request_error",
    )


class FakeOpenAI(ScriptedServer):
    api_path = "/v1"

    def __init__(self, default: Reply | None = None) -> None:
        super().__init__(default or completion(HOLD_ANSWER))
