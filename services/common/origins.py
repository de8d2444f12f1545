"""Web origins (``scheme://host[:port]``) in the one spelling browsers send.

Browsers send ``Origin`` lower-case and without the scheme's default port, so a
configured ``HTTP://Example.com:80/`` and a received ``http://example.com`` are the same
origin once both are normalised here.
"""

from __future__ import annotations

from urllib.parse import urlsplit

ANY_ORIGIN = "*"
DEFAULT_PORTS = {"http": 80, "https": 443}


def normalise_origin(text: str) -> str:
    """``scheme://host[:port]``, lower-case, default port dropped; ValueError otherwise."""
    candidate = text.strip()
    try:
        parts = urlsplit(candidate)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{text!r} is not an origin: {exc}") from None
    scheme, host = parts.scheme.lower(), parts.hostname
    if scheme not in DEFAULT_PORTS or not host:
        raise ValueError(f"{text!r} is not an origin: expected http(s)://host[:port]")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"{text!r} is not an origin: no path, query or user part allowed")
    if ":" in host:  # an IPv6 address keeps its brackets
        host = f"[{host}]"
    if port is None or port == DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def parse_origins(value: object) -> object:
    """A comma-separated list (or a sequence) as normalised origins; ``*`` stays as it is.

    Anything else is returned unchanged for the settings' own type check to refuse.
    """
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list | tuple):
        return value
    items = [str(item).strip() for item in value]
    return tuple(i if i == ANY_ORIGIN else normalise_origin(i) for i in items if i)
