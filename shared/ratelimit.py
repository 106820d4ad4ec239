"""A token bucket shared by every concurrent function instance (architecture rule 6, docs/architecture.md).

The CLB adapter calls `SharedRateLimiter(...).acquire()` before each write API call so that all
instances together stay under CLB's 20 requests/second. The bucket lives in the BucketStore
(`take_tokens`), so the limit holds across processes and machines; waiting uses the injected clock.
"""

from __future__ import annotations

from shared.domain.errors import RetryableError
from shared.ports import BucketStore, Clock


class SharedRateLimiter:
    """`acquire(n)` blocks (via `clock.sleep`) until the shared bucket grants `n` tokens."""

    def __init__(self, store: BucketStore, clock: Clock, bucket: str, rate_per_s: float, burst: float) -> None:
        if rate_per_s <= 0 or burst <= 0:
            raise ValueError(f"rate limiter {bucket!r}: rate_per_s and burst must be positive")
        self._store = store
        self._clock = clock
        self.bucket = bucket
        self.rate_per_s = rate_per_s
        self.burst = burst

    def acquire(self, n: float = 1, *, max_wait_s: float = 30.0) -> float:
        """Take `n` tokens, sleeping as the bucket advises; returns the seconds waited.

        Raises `RetryableError` (without taking anything) when the next wait would push the total
        past `max_wait_s`, so a function gives up in time and is retried later instead of timing out.
        """
        started = self._clock.monotonic()
        while True:
            wait = self._store.take_tokens(
                self.bucket, rate_per_s=self.rate_per_s, burst=self.burst, n=n, now=self._clock.now()
            )
            waited = self._clock.monotonic() - started
            if wait <= 0:
                return waited
            if waited + wait > max_wait_s:
                raise RetryableError(
                    f"rate limit {self.bucket!r} ({self.rate_per_s:g}/s, burst {self.burst:g}) is "
                    f"saturated: {n:g} token(s) need {wait:.2f}s more after {waited:.2f}s of waiting "
                    f"(max {max_wait_s:g}s); retry later or lower the request rate",
                    delay_s=wait,
                )
            self._clock.sleep(wait)
