"""What may stand as one token of a NATS subject (agent ids, service names)."""

from __future__ import annotations

import re

_TOKEN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def valid_token(value: str) -> bool:
    """True when ``value`` can be one subject token."""
    return bool(_TOKEN.match(value))


def subject_token(value: str) -> str:
    """``value`` itself, or ValueError when it would not be exactly one subject token
    (a '.', '*' or '>' would widen the subject to other agents)."""
    if not valid_token(value):
        raise ValueError(
            f"{value!r} cannot be used in a subject: use lower-case letters, digits, '-' or '_'"
        )
    return value
