"""Recorded answers keyed by the conversation's sha256: record a season once, replay it free."""

from __future__ import annotations

import json
import os
from pathlib import Path

from services.agent.providers.base import Completion, Conversation, Provider, ProviderError


def recording_path(directory: Path, conversation: Conversation) -> Path:
    return directory / f"{conversation.sha256}.json"


class ReplayProvider:
    name = "replay"
    billable = False

    def __init__(self, directory: Path) -> None:
        self._directory = directory

    async def complete(self, conversation: Conversation, timeout: float) -> Completion:
        path = recording_path(self._directory, conversation)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ProviderError(
                f"no recording for prompt sha256 {conversation.sha256} in {self._directory}",
                kind="fatal",
            ) from None
        except (OSError, ValueError) as exc:
            raise ProviderError(f"recording {path} is unreadable: {exc}", kind="fatal") from None
        return Completion(
            text=raw["text"],
            model=raw.get("model", ""),
            prompt_tokens=int(raw.get("prompt_tokens", 0)),
            completion_tokens=int(raw.get("completion_tokens", 0)),
            thinking=raw.get("thinking"),
        )

    async def close(self) -> None:
        return None


class RecordingProvider:
    """Wraps a live provider and writes each answer where :class:`ReplayProvider` looks."""

    billable = True

    def __init__(self, inner: Provider, directory: Path) -> None:
        self._inner = inner
        self._directory = directory
        self.name = inner.name

    async def complete(self, conversation: Conversation, timeout: float) -> Completion:
        completion = await self._inner.complete(conversation, timeout)
        self._directory.mkdir(parents=True, exist_ok=True)
        path = recording_path(self._directory, conversation)
        record = {
            "text": completion.text,
            "model": completion.model,
            "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion.completion_tokens,
            "thinking": completion.thinking,
        }
        # Written whole then renamed: a replay never reads half a recording.
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(record, indent=1), encoding="utf-8")
        partial.replace(path)
        return completion

    async def close(self) -> None:
        await self._inner.close()
