"""Powertools-style idempotent execution of one step over the `Store` port.

Steps (`shared/steps/`) and handlers wrap their side-effecting work in `run_idempotent(...)`: the first
invocation claims the key (IN_PROGRESS, expiring after about the function timeout), runs the work and
stores its JSON result (COMPLETED); a duplicate delivery replays that result without running the work;
a concurrent duplicate gets `IdempotencyInProgress` (retryable); a failure releases the claim so a retry
can run. EXPIRED is never stored, it is derived from the caller's clock. Each claim carries a fresh
token that completion and release must match, so a run that outlived its claim can neither overwrite
the result of the invocation that took the key over nor delete that invocation's claim.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from typing import Any

import structlog
from pydantic import BaseModel

from shared.domain.errors import InvalidInput, PermanentError
from shared.ports import Clock, IdempotencyStore

_log = structlog.get_logger(__name__)

_MISSING: Any = object()


def to_jsonable(value: Any) -> Any:
    """Plain JSON data for `value`: pydantic models (also nested in lists/dicts) are dumped in JSON mode."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


def canonical_json(payload: Any) -> str:
    """The canonical form hashed for keys: sorted keys, no whitespace, no NaN."""
    try:
        return json.dumps(to_jsonable(payload), sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"idempotent payload is not JSON-serialisable ({exc}); pass a pydantic model or plain "
            "dict/list/str/number data"
        ) from exc


def payload_hash(payload: Any) -> str:
    """sha256 hex digest of the payload's canonical JSON."""
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def idempotency_key(function: str, payload: Any) -> str:
    """`"<function>#" + sha256(canonical JSON)`, e.g. `bind#3f2a...`."""
    return f"{function}#{payload_hash(payload)}"


def run_idempotent(
    store: IdempotencyStore,
    clock: Clock,
    function: str,
    payload: Any,
    fn: Callable[[], Any],
    *,
    in_progress_ttl_s: float,
    record_ttl_s: float,
    key_data: Any = _MISSING,
) -> Any:
    """Run `fn()` at most once per key and return its result in JSON form (the same on first run and
    on replay). The key is derived from `key_data` (default: the whole payload); the payload hash always
    covers the whole payload, so a reused key with another payload raises `IdempotencyKeyMismatch`.

    `in_progress_ttl_s` should be about the function timeout: a claim left by a crashed invocation
    becomes reclaimable after it. Raises `IdempotencyInProgress` while another claim is live; a failure
    of `fn` releases the claim and re-raises the original error.
    """
    key = idempotency_key(function, payload if key_data is _MISSING else key_data)
    digest = payload_hash(payload)
    token = uuid.uuid4().hex
    replay = store.idem_claim(
        key, digest, now=clock.now(), in_progress_ttl_s=in_progress_ttl_s, record_ttl_s=record_ttl_s, token=token
    )
    if replay is not None:
        _log.info("idempotency.replayed", key=key)
        return replay.result
    try:
        result = to_jsonable(fn())
    except BaseException:
        _release(store, key, token)
        raise
    try:
        json.dumps(result, allow_nan=False)
    except (TypeError, ValueError) as exc:
        # A result that cannot be stored must not be recorded as done; the retry re-runs the step.
        _release(store, key, token)
        raise PermanentError(
            f"step {function!r} returned a result that is not JSON-serialisable ({exc}); return a "
            "pydantic model or plain dict/list/str/number data"
        ) from exc
    if not store.idem_complete(key, digest, result, now=clock.now(), record_ttl_s=record_ttl_s, token=token):
        # This run outlived its claim and another invocation owns the key now: its record stands.
        _log.warning("idempotency.claim_lost", key=key)
    return result


def _release(store: IdempotencyStore, key: str, token: str) -> None:
    """Release our claim after a failure; if the store is down too, the claim simply expires."""
    try:
        store.idem_release(key, token=token)
    except Exception:
        _log.warning("idempotency.release_failed", key=key, exc_info=True)
