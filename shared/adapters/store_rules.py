"""Engine-neutral rules of the KV store: idempotency claim decisions, token-bucket arithmetic, JSON.

Both Store engines must behave identically (one contract suite runs against each). The SQLite engine
applies these functions inside a write transaction; the Redis engine runs the same rules as Lua scripts
(`store_redis_scripts.py`) and uses the error builders here so both raise the same typed errors with the
same messages.
"""

from __future__ import annotations

import json
import math
from typing import Any

from shared.domain.errors import IdempotencyInProgress, IdempotencyKeyMismatch, InvalidInput
from shared.domain.models import IdempotencyRecord

# Redis TTLs run on the server's wall clock while expiry logic runs on the caller's `now`; keys are kept
# this much longer than their logical lifetime so a fake or skewed clock never loses live data early.
TTL_GRACE_S = 300.0

# Epoch seconds near 1.7e9 resolve to about 0.24 us, so a caller that sleeps exactly the advised wait
# may come back a rounding error short; granting that early (1 us) keeps waits from shrinking forever.
GRANT_TOLERANCE_S = 1e-6


def dumps(value: Any) -> str:
    """Compact JSON for stored values; rejects NaN so every engine round-trips the same data."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, allow_nan=False)


def in_progress_error(key: str, in_progress_expiry_ts: float | None, now: float) -> IdempotencyInProgress:
    remaining = 1.0 if in_progress_expiry_ts is None else max(in_progress_expiry_ts - now, 0.1)
    return IdempotencyInProgress(
        f"step {key!r} is already running in another invocation; retry after it completes or after "
        f"its claim expires in {remaining:.1f}s",
        delay_s=min(remaining, 60.0),
    )


def mismatch_error(key: str) -> IdempotencyKeyMismatch:
    return IdempotencyKeyMismatch(
        f"idempotency key {key!r} was already used with a different payload; a step's key must identify "
        "its whole input (send a new request instead of changing one in flight)"
    )


def claim_decision(existing: IdempotencyRecord | None, payload_hash: str, now: float) -> IdempotencyRecord | None:
    """What `idem_claim` does with the stored record: None = the caller may (re)claim the key; a
    COMPLETED record = replay it. Raises for a mismatching payload or a live IN_PROGRESS claim."""
    if existing is None or existing.effective_status(now) == "EXPIRED":
        return None
    if existing.payload_hash != payload_hash:
        raise mismatch_error(existing.key)
    if existing.status == "IN_PROGRESS":
        raise in_progress_error(existing.key, existing.in_progress_expiry_ts, now)
    return existing


def check_bucket_request(bucket: str, *, rate_per_s: float, burst: float, n: float) -> None:
    """Reject token requests that could never be granted (instead of waiting forever)."""
    if not (rate_per_s > 0 and math.isfinite(rate_per_s)):
        raise InvalidInput(f"token bucket {bucket!r}: rate_per_s must be a positive number, got {rate_per_s}")
    if not (burst > 0 and math.isfinite(burst)):
        raise InvalidInput(f"token bucket {bucket!r}: burst must be a positive number, got {burst}")
    if not (0 < n <= burst):
        raise InvalidInput(
            f"token bucket {bucket!r}: cannot take {n} tokens with burst {burst}; request between 0 and "
            "burst tokens per call (split larger batches)"
        )


def refill_and_take(
    tokens: float | None, updated_at: float | None, *, rate_per_s: float, burst: float, n: float, now: float
) -> tuple[float, float, float]:
    """Token-bucket step. Returns (tokens left, new updated_at, wait seconds; 0.0 = granted).

    A new bucket starts full. Time never runs backwards for a bucket: callers on other machines may
    have slightly older clocks, and refilling from an older `now` must not mint tokens twice.
    """
    if tokens is None or updated_at is None:
        tokens, updated_at = burst, now
    stamp = max(updated_at, now)
    available = min(burst, tokens + max(0.0, now - updated_at) * rate_per_s)
    wait = (n - available) / rate_per_s
    if wait <= GRANT_TOLERANCE_S:
        return max(available - n, 0.0), stamp, 0.0
    return available, stamp, wait
