"""run_idempotent over the in-memory SQLite store with a fake clock: claim, run, complete, replay,
release on failure, in-progress duplicates, key/payload mismatch and expiry."""

from __future__ import annotations

import hashlib

import pytest
from pydantic import BaseModel

from shared.adapters.store_sqlite import MEMORY, SqliteStore
from shared.clock import FakeClock
from shared.domain.errors import IdempotencyInProgress, IdempotencyKeyMismatch, InvalidInput, PermanentError
from shared.idempotency import canonical_json, idempotency_key, payload_hash, run_idempotent

IN_PROGRESS_TTL = 60.0
RECORD_TTL = 3600.0


class Request(BaseModel):
    lb_id: str
    pods: list[str]


@pytest.fixture
def store():
    engine = SqliteStore(MEMORY)
    yield engine
    engine.close()


@pytest.fixture
def clock():
    return FakeClock()


def run(store, clock, payload, fn, **kwargs):
    return run_idempotent(
        store, clock, "bind", payload, fn, in_progress_ttl_s=IN_PROGRESS_TTL, record_ttl_s=RECORD_TTL, **kwargs
    )


class Calls:
    def __init__(self, result=None):
        self.count = 0
        self.result = result

    def __call__(self):
        self.count += 1
        return self.result


def test_key_is_function_and_sha256_of_canonical_json():
    payload = {"pods": ["b", "a"], "lb_id": "lb-1", "n": 1}
    canonical = '{"lb_id":"lb-1","n":1,"pods":["b","a"]}'
    assert canonical_json(payload) == canonical
    assert payload_hash(payload) == hashlib.sha256(canonical.encode()).hexdigest()
    assert idempotency_key("bind", payload) == "bind#" + hashlib.sha256(canonical.encode()).hexdigest()
    assert idempotency_key("bind", {"n": 1, "lb_id": "lb-1", "pods": ["b", "a"]}) == idempotency_key("bind", payload)
    assert idempotency_key("unbind", payload) != idempotency_key("bind", payload)
    assert payload_hash(Request(lb_id="lb-1", pods=["x"])) == payload_hash({"lb_id": "lb-1", "pods": ["x"]})


def test_unserialisable_payload_is_invalid_input(store, clock):
    with pytest.raises(InvalidInput, match="not JSON-serialisable"):
        run(store, clock, {"when": object()}, Calls())
    with pytest.raises(InvalidInput):
        payload_hash({"x": float("nan")})


def test_first_run_completes_and_replay_returns_the_stored_result(store, clock):
    work = Calls(Request(lb_id="lb-1", pods=["web/a"]))
    payload = {"lb_id": "lb-1", "pods": ["web/a"]}
    first = run(store, clock, payload, work)
    assert first == {"lb_id": "lb-1", "pods": ["web/a"]}
    record = store.idem_get(idempotency_key("bind", payload))
    assert record.status == "COMPLETED"
    assert record.result == first
    clock.advance(RECORD_TTL - 1)
    assert run(store, clock, payload, work) == first
    assert work.count == 1


def test_failure_releases_the_claim_and_reraises_the_original_error(store, clock):
    boom = RuntimeError("CLB said no")

    def failing():
        raise boom

    with pytest.raises(RuntimeError) as excinfo:
        run(store, clock, {"x": 1}, failing)
    assert excinfo.value is boom
    assert store.idem_get(idempotency_key("bind", {"x": 1})) is None
    retry = Calls("ok")
    assert run(store, clock, {"x": 1}, retry) == "ok"
    assert retry.count == 1


def test_release_failure_does_not_hide_the_original_error(clock):
    class BrokenRelease(SqliteStore):
        def idem_release(self, key, *, token):
            raise OSError("store went away")

    store = BrokenRelease(MEMORY)

    def failing():
        raise ValueError("step failed")

    with pytest.raises(ValueError, match="step failed"):
        run(store, clock, {"x": 1}, failing)
    assert store.idem_get(idempotency_key("bind", {"x": 1})).status == "IN_PROGRESS"
    store.close()


def test_concurrent_duplicate_raises_in_progress_without_running(store, clock):
    inner = Calls("inner")
    seen = []

    def outer():
        with pytest.raises(IdempotencyInProgress) as excinfo:
            run(store, clock, {"x": 1}, inner)
        seen.append(excinfo.value)
        return "outer"

    assert run(store, clock, {"x": 1}, outer) == "outer"
    assert inner.count == 0
    assert seen[0].retryable and 0 < seen[0].delay_s <= IN_PROGRESS_TTL


def test_claim_left_by_a_crashed_invocation_expires(store, clock):
    key = idempotency_key("bind", {"x": 1})
    store.idem_claim(
        key,
        payload_hash({"x": 1}),
        now=clock.now(),
        in_progress_ttl_s=IN_PROGRESS_TTL,
        record_ttl_s=RECORD_TTL,
        token="crashed-invocation",
    )
    with pytest.raises(IdempotencyInProgress):
        run(store, clock, {"x": 1}, Calls())
    clock.advance(IN_PROGRESS_TTL)
    work = Calls(7)
    assert run(store, clock, {"x": 1}, work) == 7
    assert work.count == 1


def test_expired_record_runs_the_step_again(store, clock):
    work = Calls(1)
    run(store, clock, {"x": 1}, work)
    clock.advance(RECORD_TTL)
    run(store, clock, {"x": 1}, work)
    assert work.count == 2


def test_same_key_with_another_payload_is_a_mismatch(store, clock):
    run(store, clock, {"pod": "web/a", "attempt": 1}, Calls("done"), key_data={"pod": "web/a"})
    work = Calls()
    with pytest.raises(IdempotencyKeyMismatch, match="bind#"):
        run(store, clock, {"pod": "web/a", "attempt": 2}, work, key_data={"pod": "web/a"})
    assert work.count == 0
    assert run(store, clock, {"pod": "web/a", "attempt": 1}, work, key_data={"pod": "web/a"}) == "done"


def test_unserialisable_result_is_not_recorded(store, clock):
    with pytest.raises(PermanentError, match="not JSON-serialisable"):
        run(store, clock, {"x": 1}, Calls({"at": object()}))
    assert store.idem_get(idempotency_key("bind", {"x": 1})) is None


def test_a_run_that_outlived_its_claim_does_not_overwrite_the_new_owners_result(store, clock):
    """The first run stalls past its claim; a retry takes the key over and completes; the late first
    run's result must not replace the retry's, and its failure must not free the key."""
    key = idempotency_key("bind", {"x": 1})

    def stalled():
        clock.advance(IN_PROGRESS_TTL + 1)
        assert run(store, clock, {"x": 1}, Calls("retry result")) == "retry result"
        return "late result"

    assert run(store, clock, {"x": 1}, stalled) == "late result"
    record = store.idem_get(key)
    assert (record.status, record.result) == ("COMPLETED", "retry result")


def test_a_late_failure_does_not_release_the_new_owners_claim(store, clock):
    key = idempotency_key("bind", {"x": 1})
    taken_over = {}

    def stalled_then_failing():
        clock.advance(IN_PROGRESS_TTL + 1)
        store.idem_claim(
            key,
            payload_hash({"x": 1}),
            now=clock.now(),
            in_progress_ttl_s=IN_PROGRESS_TTL,
            record_ttl_s=RECORD_TTL,
            token="the-new-owner",
        )
        taken_over["yes"] = True
        raise RuntimeError("late failure")

    with pytest.raises(RuntimeError):
        run(store, clock, {"x": 1}, stalled_then_failing)
    assert taken_over and store.idem_get(key).claim_token == "the-new-owner"
    with pytest.raises(IdempotencyInProgress):
        run(store, clock, {"x": 1}, Calls())
