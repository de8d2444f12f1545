"""Who may drive the scheduler: a bearer token, and a rate limit on control calls."""

from __future__ import annotations

import hmac
from collections import deque
from datetime import datetime, timedelta

from pydantic import SecretStr

from services.common.clock import Clock

DISABLED_MESSAGE = (
    "scheduler control is disabled: set ARENA_ADMIN_TOKEN in the gateway's environment "
    "(`make run` generates one and prints it) and send it as `Authorization: Bearer <token>`"
)


class ControlDenied(Exception):
    """A control call refused; ``status_code`` says why (401, 403 or 429)."""

    def __init__(self, status_code: int, detail: str, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
        self.retry_after = retry_after


class RateLimit:
    """At most ``calls`` within any ``window`` (a sliding log, pure given the clock)."""

    def __init__(self, clock: Clock, calls: int, window: timedelta) -> None:
        if calls < 1:
            raise ValueError("calls must be at least 1")
        self._clock = clock
        self._calls = calls
        self._window = window
        self._log: deque[datetime] = deque()

    def take(self) -> None:
        now = self._clock.now()
        while self._log and now - self._log[0] >= self._window:
            self._log.popleft()
        if len(self._log) >= self._calls:
            wait = self._window - (now - self._log[0])
            seconds = max(1, int(wait.total_seconds() + 0.999))
            raise ControlDenied(
                429,
                f"too many control calls: at most {self._calls} per "
                f"{int(self._window.total_seconds())} s; retry in {seconds} s",
                retry_after=seconds,
            )
        self._log.append(now)


class AdminGuard:
    """Checks the ``Authorization`` header of a control call, then its rate limit."""

    def __init__(self, token: SecretStr | None, limit: RateLimit) -> None:
        self._token = token.get_secret_value() if token and token.get_secret_value() else None
        self._limit = limit

    @property
    def enabled(self) -> bool:
        return self._token is not None

    def check(self, authorization: str | None) -> None:
        if self._token is None:
            raise ControlDenied(403, DISABLED_MESSAGE)
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise ControlDenied(401, "send the admin token as `Authorization: Bearer <token>`")
        if not hmac.compare_digest(given.strip().encode(), self._token.encode()):
            raise ControlDenied(401, "the admin token is wrong")
        self._limit.take()
