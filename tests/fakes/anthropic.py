"""A local server speaking the Anthropic Messages API wire format (``POST /v1/messages``)."""

from __future__ import annotations

import itertools
from typing import Any

from tests.fakes.scripted_http import HOLD_ANSWER, Recorded, Reply, ScriptedServer

_ids = itertools.count(1)


def message(
    text: str,
    *,
    input_tokens: int = 1200,
    output_tokens: int = 150,
    model: str = "claude-sonnet-test",
    thinking: str | None = None,
) -> Reply:
    content: list[dict[str, Any]] = []
    if thinking is not None:
        content.append({"type": "thinking", "thinking": thinking, "signature": "sig"})
    content.append({"type": "text", "text": text})
    return Reply(
        200,
        {
            "id": f"msg_{next(_ids):06d}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        },
        headers={"request-id": "req_fake"},
    )


ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def error(status: int, text: str | None = None) -> Reply:
    kind = ERROR_TYPES.get(status, "api_error")
    return Reply(
        status,
        {"type": "error", "error": {"type": kind, "message": text or kind.replace("_", " ")}},
        headers={"request-id": "req_fake"},
    )


def credentials_echo(status: int = 401) -> Reply:
    """An error quoting the credentials the request carried, as some gateways in front do."""

    def body(request: Recorded) -> dict[str, Any]:
        sent = request.headers.get("authorization") or request.headers.get("x-api-key")
        return {
            "type": "error",
            "error": {
                "type": ERROR_TYPES.get(status, "api_error"),
                "message": f"credentials refused: Authorization: {sent}",
            },
        }

    return Reply(status, body, headers={"request-id": "req_fake"})


class FakeAnthropic(ScriptedServer):
    """Anthropic's API (its SDK adds /v1/messages to the base URL itself)."""

    def __init__(self, default: Reply | None = None) -> None:
        super().__init__(default or message(HOLD_ANSWER))
