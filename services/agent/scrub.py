"""Provider error text without key material, before it is stored, logged or shown.

A provider refusing a key says so in words that quote it: OpenAI's 401 reads "Incorrect
API key provided: sk-proj-ab****wxyz", DeepSeek's "Your api key: ****wxyz is invalid",
and proxies echo headers. That text becomes a decision's error, an ``llm_api_calls``
row, a log line and a heartbeat reason on the dashboard; so every piece of it goes
through :class:`Scrubber` first. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "[redacted]"
# Shorter configured values are not secrets worth the false hits (the "not-needed" key of
# a local server is one); a shared run this long of a real key is a fragment of it.
MIN_SECRET_CHARS = 8
FRAGMENT_CHARS = 8

# Runs of the characters keys are written in, plus the '*' of masked forms.
_TOKEN = re.compile(r"[A-Za-z0-9_\-*.+/=]+")
# sk-..., sk-ant-..., sk-proj-..., sk-or-v1-...: the shape of the keys of the providers here.
_KEY_SHAPE = re.compile(r"^sk-[A-Za-z0-9_\-*]{4,}")
# A masked key: what is left of it beside a run of '*'.
_MASKED = re.compile(r"\*{3,}")
_BEARER = re.compile(r"(?i)\b(bearer)\s+[^\s,;'\"]+")
_SCHEMES = frozenset({"bearer", "basic"})
_LABELLED = re.compile(
    r"(?i)\b((?:x-)?api[-_ ]?key|authorization)(['\"]?\s*[:=]\s*['\"]?)([^\s'\",;)}\]]+)"
)


class Scrubber:
    """Removes the configured secrets, their fragments and anything shaped like a key."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets = tuple(
            sorted({s for s in secrets if s and len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True)
        )
        self._fragments = frozenset(
            secret[i : i + FRAGMENT_CHARS]
            for secret in self._secrets
            for i in range(len(secret) - FRAGMENT_CHARS + 1)
        )

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
        text = _LABELLED.sub(self._labelled, text)
        return _TOKEN.sub(self._token, text)

    def _labelled(self, match: re.Match[str]) -> str:
        value = match.group(3)
        # "Authorization: Bearer [redacted]": the scheme is no secret, the token went already.
        if value.startswith("[") or value.lower() in _SCHEMES:
            return match.group(0)
        return f"{match.group(1)}{match.group(2)}{REDACTED}"

    def _token(self, match: re.Match[str]) -> str:
        token = match.group(0)
        if _KEY_SHAPE.match(token) or _MASKED.search(token) or self._holds_fragment(token):
            # The full stop (or ellipsis) after a key stays: "provided: [redacted]."
            return REDACTED + token[len(token.rstrip(".")) :]
        return token

    def _holds_fragment(self, token: str) -> bool:
        return any(
            token[i : i + FRAGMENT_CHARS] in self._fragments
            for i in range(len(token) - FRAGMENT_CHARS + 1)
        )
