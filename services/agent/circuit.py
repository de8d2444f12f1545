"""A circuit breaker over cycles: after repeated failures, stop calling for a while."""

from __future__ import annotations

from services.common.clock import Clock


class CircuitBreaker:
    def __init__(self, clock: Clock, *, failures: int, reset_seconds: float) -> None:
        self._clock = clock
        self._threshold = failures
        self._reset_seconds = reset_seconds
        self._failures = 0
        self._opened_at: float | None = None
        self._last_error = ""

    def open_reason(self) -> str | None:
        """Why calls are off now; None when closed or when it is time to try one again."""
        if self._opened_at is None:
            return None
        waited = self._clock.monotonic() - self._opened_at
        if waited >= self._reset_seconds:
            return None  # half-open: the next cycle tries once; a failure re-opens it
        return (
            f"circuit open after {self._failures} failed cycles in a row "
            f"(last: {self._last_error}); next try in {self._reset_seconds - waited:.0f}s"
        )

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None

    def record_failure(self, error: str) -> None:
        self._failures += 1
        self._last_error = error
        if self._failures >= self._threshold:
            self._opened_at = self._clock.monotonic()
