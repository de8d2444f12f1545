"""What every provider shares: the conversation, the completion, the classified failure."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Literal, Protocol

from services.agent.prompt import Prompt, Transcript

Role = Literal["user", "assistant"]
# retryable: 429, 5xx, 529, connection; auth: 401/403 (the agent is disabled);
# fatal: any other refusal (a retry would be refused again); timeout: no answer in time.
FailureKind = Literal["retryable", "auth", "fatal", "timeout"]


@dataclass(frozen=True)
class Turn:
    role: Role
    content: str


@dataclass(frozen=True)
class Conversation(Transcript):
    system: str
    turns: tuple[Turn, ...]

    @classmethod
    def of(cls, prompt: Prompt) -> Conversation:
        return cls(prompt.system, (Turn("user", prompt.user),))

    def then(self, answer: str, question: str) -> Conversation:
        return Conversation(
            self.system, (*self.turns, Turn("assistant", answer), Turn("user", question))
        )

    def parts(self) -> tuple[str, ...]:
        """The whole exchange; for a first question, the prompt's parts."""
        return (self.system, *(t.content for t in self.turns))


@dataclass(frozen=True)
class Completion:
    text: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    thinking: str | None = None
    status_code: int | None = 200


class ProviderError(Exception):
    def __init__(self, message: str, *, kind: FailureKind, status_code: int | None = None):
        super().__init__(message)
        self.kind: FailureKind = kind
        self.status_code = status_code


class Provider(Protocol):
    name: str
    # False for answers that cost nothing and call nobody (replay): no LlmCall is recorded.
    billable: bool

    async def complete(self, conversation: Conversation, timeout: float) -> Completion: ...

    async def close(self) -> None: ...


def classify_status(status: int) -> FailureKind:
    if status in (401, 403):
        return "auth"
    if status in (408, 409, 429) or status >= 500:
        return "retryable"
    return "fatal"


MAX_ERROR_CHARS = 300


def short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


@contextlib.contextmanager
def sdk_errors(sdk: ModuleType, timeout: float, scrub: Callable[[str], str]) -> Iterator[None]:
    """Turn an official SDK's errors into :class:`ProviderError`, their text scrubbed.

    The anthropic and openai SDKs are generated from one template and raise the same
    exception classes (``APITimeoutError``, ``APIStatusError``, ``APIConnectionError``,
    all ``APIError``). ``scrub`` removes key material before the text is shortened, so
    that no cut leaves a piece of a key it would no longer recognise.
    """
    try:
        yield
    except sdk.APITimeoutError:
        raise ProviderError(f"no answer within {timeout:.1f}s", kind="timeout") from None
    except sdk.APIStatusError as exc:
        status = exc.status_code
        raise ProviderError(
            f"HTTP {status}: {short(scrub(exc.message))}",
            kind=classify_status(status),
            status_code=status,
        ) from None
    except sdk.APIConnectionError as exc:
        raise ProviderError(
            f"connection failed: {short(scrub(str(exc)))}", kind="retryable"
        ) from None
    except sdk.APIError as exc:
        # Any other SDK failure (an answer it cannot read): a retry would read it again.
        raise ProviderError(
            f"{type(exc).__name__}: {short(scrub(str(exc)))}", kind="fatal"
        ) from None
