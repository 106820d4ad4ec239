"""Per-action request rate limiting for the CLB emulator (the real API allows 20 requests/s per action).

A sliding one-second window per action over the model's injectable clock, so unit tests drive it with a
fake clock. Used by `ClbModel.call` under the model lock; a refused call answers `RequestLimitExceeded`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

WINDOW_S = 1.0


class RateLimiter:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._windows: dict[str, deque[float]] = {}

    def allow(self, action: str, limit: int) -> bool:
        """Count the call if `action` made fewer than `limit` calls in the last second; else refuse it."""
        now = self._clock()
        window = self._windows.setdefault(action, deque())
        while window and window[0] <= now - WINDOW_S:
            window.popleft()
        if len(window) >= limit:
            return False
        window.append(now)
        return True

    def reset(self) -> None:
        self._windows.clear()
