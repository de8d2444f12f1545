"""Typed errors of the Binance client: each says what went wrong and what to do."""

from __future__ import annotations


class BinanceError(RuntimeError):
    """Base of every Binance client error."""


class BinanceApiError(BinanceError):
    """Binance answered with an error body ``{"code": ..., "msg": ...}``."""

    def __init__(self, status: int, code: int, msg: str, path: str) -> None:
        super().__init__(f"Binance {path} answered HTTP {status}, code {code}: {msg}")
        self.status = status
        self.code = code
        self.msg = msg


class InvalidSymbol(BinanceApiError):
    """Code -1121: the symbol does not exist on the exchange."""


class RateLimited(BinanceError):
    """429 (rate limit) or 418 (IP banned) whose ``Retry-After`` is longer than we wait."""

    def __init__(self, status: int, retry_after: float, path: str) -> None:
        kind = "IP banned (418)" if status == 418 else "rate limited (429)"
        super().__init__(f"Binance {path}: {kind}, retry after {retry_after:.0f}s")
        self.status = status
        self.retry_after = retry_after


class BinanceUnavailable(BinanceError):
    """Timeouts, connection errors or 5xx answers outlasted the retries."""


class MalformedResponse(BinanceError):
    """The answer is not the JSON shape Binance documents."""


INVALID_SYMBOL_CODE = -1121
