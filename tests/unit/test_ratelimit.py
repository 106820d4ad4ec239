"""SharedRateLimiter over the in-memory SQLite store with a fake clock: bursts pass, waits follow the
bucket's hint, instances share one bucket, and a wait beyond max_wait_s is a retryable error."""

from __future__ import annotations

import pytest

from shared.adapters.store_sqlite import MEMORY, SqliteStore
from shared.clock import FakeClock
from shared.domain.errors import InvalidInput, RetryableError
from shared.ratelimit import SharedRateLimiter


@pytest.fixture
def store():
    engine = SqliteStore(MEMORY)
    yield engine
    engine.close()


@pytest.fixture
def clock():
    return FakeClock()


def test_burst_passes_without_sleeping_then_waits_for_refill(store, clock):
    limiter = SharedRateLimiter(store, clock, "clb-write", rate_per_s=20, burst=3)
    assert [limiter.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert clock.sleeps == []
    assert limiter.acquire() == pytest.approx(0.05)
    assert clock.sleeps == [pytest.approx(0.05)]
    assert limiter.acquire(2) == pytest.approx(0.1)


def test_instances_share_one_bucket(store, clock):
    first = SharedRateLimiter(store, clock, "clb-write", rate_per_s=10, burst=2)
    second = SharedRateLimiter(store, clock, "clb-write", rate_per_s=10, burst=2)
    other = SharedRateLimiter(store, clock, "clb-read", rate_per_s=10, burst=2)
    first.acquire(2)
    assert other.acquire(2) == 0.0
    assert second.acquire() == pytest.approx(0.1)


def test_wait_beyond_max_wait_is_retryable_and_takes_nothing(store, clock):
    limiter = SharedRateLimiter(store, clock, "clb-write", rate_per_s=1, burst=5)
    limiter.acquire(5)
    with pytest.raises(RetryableError, match="saturated") as excinfo:
        limiter.acquire(2, max_wait_s=1.5)
    assert excinfo.value.delay_s == pytest.approx(2.0)
    assert clock.sleeps == []
    clock.advance(2)
    assert limiter.acquire(2, max_wait_s=0) == 0.0


class Competitor(FakeClock):
    """A clock whose sleeps let another instance grab the refilled tokens first."""

    def __init__(self, store):
        super().__init__()
        self.rival = SharedRateLimiter(store, self, "clb-write", rate_per_s=10, burst=1)
        self.steals = 2

    def sleep(self, seconds):
        super().sleep(seconds)
        if self.steals:
            self.steals -= 1
            self.rival.acquire(max_wait_s=0)


def test_contention_keeps_waiting_until_granted_within_the_budget(store):
    clock = Competitor(store)
    limiter = SharedRateLimiter(store, clock, "clb-write", rate_per_s=10, burst=1)
    limiter.acquire()
    assert limiter.acquire(max_wait_s=1.0) == pytest.approx(0.3)
    assert clock.sleeps == [pytest.approx(0.1)] * 3
    clock.steals = 5
    with pytest.raises(RetryableError):
        limiter.acquire(max_wait_s=0.25)


def test_invalid_limits_are_rejected(store, clock):
    with pytest.raises(ValueError, match="positive"):
        SharedRateLimiter(store, clock, "b", rate_per_s=0, burst=1)
    limiter = SharedRateLimiter(store, clock, "b", rate_per_s=1, burst=2)
    with pytest.raises(InvalidInput, match="burst"):
        limiter.acquire(3)
