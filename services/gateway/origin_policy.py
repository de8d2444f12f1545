"""Which browser pages may open ``/ws``: an allow-list of origins, same-origin by default.

A browser always sends ``Origin`` on a WebSocket handshake, so a page on another site
cannot read the live feed through a visitor's browser. Tools that are not browsers
(scripts, the tests' clients) send no ``Origin`` and are not concerned: nothing they
could do with one is prevented by refusing them.
"""

from __future__ import annotations

from collections.abc import Iterable

from services.common.origins import ANY_ORIGIN, normalise_origin

LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")


class OriginPolicy:
    def __init__(self, allowed: Iterable[str]) -> None:
        listed = tuple(allowed)
        self.allows_any = ANY_ORIGIN in listed
        self.allowed = frozenset(normalise_origin(o) for o in listed if o != ANY_ORIGIN)

    @classmethod
    def same_origin(cls, host: str, port: int) -> OriginPolicy:
        """The gateway's own origins: its configured host and the loopback names."""
        own = f"[{host}]" if ":" in host else host
        return cls(f"http://{name}:{port}" for name in (own, *LOCAL_HOSTS))

    @classmethod
    def configured(cls, origins: tuple[str, ...], host: str, port: int) -> OriginPolicy:
        """``ARENA_WS_ALLOWED_ORIGINS`` when set, else same-origin on the bound port."""
        return cls(origins) if origins else cls.same_origin(host, port)

    def allows(self, origin: str | None) -> bool:
        if origin is None or self.allows_any:
            return True
        try:
            return normalise_origin(origin) in self.allowed
        except ValueError:  # "null" (sandboxed pages, file://) and garbage
            return False
