"""Text from outside (a model's answer, a provider's error) made storable, visibly.

Postgres refuses NUL in ``text`` and ``jsonb``, and lone UTF-16 surrogates (a model cut
off mid-emoji, a JSON ``"\\ud83d"``) can be neither encoded as UTF-8 nor stored. Such a
character becomes U+FFFD, so a reader sees that something was there; nothing else changes.
"""

from __future__ import annotations

import re

REPLACEMENT = "\ufffd"

_NUL = "\x00"

# A JSON string escape, one at a time from the left, so an escaped backslash ("\\\\")
# is never mistaken for the start of a "\\u" escape. Group 1: a surrogate pair (kept);
# group 2: a lone surrogate (replaced); anything else is kept as it is.
_JSON_ESCAPE = re.compile(
    r"(\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    r"|(\\u[dD][89a-fA-F][0-9a-fA-F]{2})"
    r"|\\.",
    re.DOTALL,
)


def clean_text(text: str) -> str:
    """``text`` with NUL and lone surrogates replaced by U+FFFD.

    Two halves of a pair that arrived as separate code points (a UTF-16 source) join
    into the one character they encode, as a JSON reader of the same text would.
    """
    if not text.isascii() and not _encodes(text):
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text.replace(_NUL, REPLACEMENT) if _NUL in text else text


def _encodes(text: str) -> bool:
    # In C, and several times faster than searching for surrogates: only they fail.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# Raw control characters are invalid inside JSON strings (outside them only tab, CR and
# LF may appear, as whitespace): written as escapes they keep their meaning.
_RAW_CONTROL = re.compile("[\x01-\x08\x0b\x0c\x0e-\x1f]")


def _control(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group(0)):04x}"


def _escape(match: re.Match[str]) -> str:
    if match.group(2) is not None:
        return "\\ufffd"
    return match.group(0)


def readable_json(data: str | bytes | bytearray) -> str:
    """JSON text a strict parser accepts, from JSON another writer produced.

    Python's ``json.dumps`` writes a lone surrogate as ``"\\ud800"``, and a careless
    writer may send bytes that are not UTF-8 or raw control characters; strict parsers
    refuse the whole document for any of them. Here a lone surrogate, NUL or invalid byte
    becomes U+FFFD, another control character its escape, and everything else stays as it
    was, numbers included.
    """
    text = data if isinstance(data, str) else bytes(data).decode("utf-8", errors="replace")
    text = _RAW_CONTROL.sub(_control, clean_text(text))
    return _JSON_ESCAPE.sub(_escape, text)
