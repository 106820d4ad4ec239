"""The Store contract: every engine (SQLite file, Redis, Redis Cluster) behaves the same, driven by a
fake clock. Concurrency (threads and processes racing) is in test_store_concurrency.py."""

# ruff: noqa: F811  (the engine fixtures are imported from store_engines and requested by name)

from __future__ import annotations

import pytest

from shared.domain.errors import IdempotencyInProgress, IdempotencyKeyMismatch, InvalidInput
from shared.domain.models import BindingRecord, SelectorEntry, StoredEvent
from tests.integration.store_engines import clock, store, store_url  # noqa: F401

IN_PROGRESS_TTL = 60.0
RECORD_TTL = 3600.0


def claim(store, clock, key="bind#k", payload_hash="h1", token="t1"):
    return store.idem_claim(
        key, payload_hash, now=clock.now(), in_progress_ttl_s=IN_PROGRESS_TTL, record_ttl_s=RECORD_TTL, token=token
    )


def complete(store, clock, result, key="bind#k", payload_hash="h1", token="t1"):
    return store.idem_complete(key, payload_hash, result, now=clock.now(), record_ttl_s=RECORD_TTL, token=token)


# ------------------------------------------------------------------------------------------- idempotency


def test_first_claim_owns_the_key_and_records_in_progress(store, clock):
    assert store.idem_get("bind#k") is None
    assert claim(store, clock) is None
    record = store.idem_get("bind#k")
    assert record is not None
    assert record.status == "IN_PROGRESS"
    assert record.payload_hash == "h1"
    assert record.in_progress_expiry_ts == clock.now() + IN_PROGRESS_TTL
    assert record.expiry_ts == clock.now() + RECORD_TTL


def test_concurrent_duplicate_is_in_progress_and_retryable(store, clock):
    claim(store, clock)
    clock.advance(10)
    with pytest.raises(IdempotencyInProgress) as excinfo:
        claim(store, clock)
    assert excinfo.value.retryable
    assert excinfo.value.delay_s == pytest.approx(IN_PROGRESS_TTL - 10)


def test_completed_record_is_replayed_with_its_result(store, clock):
    claim(store, clock)
    result = {"registered": ["10.0.0.1:80", "10.0.0.2:80"], "count": 2, "nested": {"ok": True, "x": None}}
    assert complete(store, clock, result) is True
    clock.advance(RECORD_TTL - 1)
    replay = claim(store, clock)
    assert replay is not None
    assert replay.status == "COMPLETED"
    assert replay.result == result
    assert replay.in_progress_expiry_ts is None
    assert store.idem_get("bind#k").result == result


def test_reused_key_with_another_payload_is_a_mismatch(store, clock):
    claim(store, clock)
    with pytest.raises(IdempotencyKeyMismatch, match="bind#k"):
        claim(store, clock, payload_hash="h2")
    complete(store, clock, "done")
    with pytest.raises(IdempotencyKeyMismatch):
        claim(store, clock, payload_hash="h2")


def test_expired_in_progress_claim_can_be_reclaimed(store, clock):
    claim(store, clock)
    clock.advance(IN_PROGRESS_TTL)
    assert claim(store, clock) is None
    assert store.idem_get("bind#k").in_progress_expiry_ts == clock.now() + IN_PROGRESS_TTL
    with pytest.raises(IdempotencyInProgress):
        claim(store, clock)


def test_expired_completed_record_runs_again_even_with_another_payload(store, clock):
    claim(store, clock)
    complete(store, clock, 1)
    clock.advance(RECORD_TTL)
    assert claim(store, clock, payload_hash="h2") is None
    assert store.idem_get("bind#k").payload_hash == "h2"


def test_release_frees_a_claim_but_never_a_completed_record(store, clock):
    claim(store, clock)
    assert store.idem_release("bind#k", token="t1") is True
    assert store.idem_get("bind#k") is None
    assert claim(store, clock) is None
    complete(store, clock, [1, 2])
    assert store.idem_release("bind#k", token="t1") is False
    assert store.idem_get("bind#k").status == "COMPLETED"
    assert store.idem_release("never-claimed", token="t1") is False


def test_a_claim_records_its_token(store, clock):
    claim(store, clock, token="owner-a")
    assert store.idem_get("bind#k").claim_token == "owner-a"


def test_a_late_owner_cannot_complete_over_the_new_owners_claim(store, clock):
    claim(store, clock, token="late")
    clock.advance(IN_PROGRESS_TTL)  # the first caller stalled past its claim
    assert claim(store, clock, token="new") is None
    assert complete(store, clock, "stale result", token="late") is False
    record = store.idem_get("bind#k")
    assert (record.status, record.claim_token, record.result) == ("IN_PROGRESS", "new", None)
    assert complete(store, clock, "fresh result", token="new") is True
    assert store.idem_get("bind#k").result == "fresh result"


def test_a_late_release_never_deletes_the_new_owners_claim(store, clock):
    claim(store, clock, token="late")
    clock.advance(IN_PROGRESS_TTL)
    assert claim(store, clock, token="new") is None
    assert store.idem_release("bind#k", token="late") is False
    assert store.idem_get("bind#k").claim_token == "new"
    with pytest.raises(IdempotencyInProgress):
        claim(store, clock, token="third")


def test_completing_a_vanished_or_completed_claim_changes_nothing(store, clock):
    assert complete(store, clock, "orphan") is False
    assert store.idem_get("bind#k") is None
    claim(store, clock, token="a")
    assert complete(store, clock, "first", token="a") is True
    assert complete(store, clock, "second", token="a") is False
    assert store.idem_get("bind#k").result == "first"


# ---------------------------------------------------------------------------------------------- bindings


def binding(lb="lb-1", listener="lbl-1", pod="uid-1", service="web/svc", **extra):
    fields = dict(
        lb_id=lb, listener_id=listener, pod_uid=pod, namespace="web", pod_name=f"pod-{pod}", service=service,
        ip="10.0.0.1", port=8080,
    )  # fmt: skip
    fields.update(extra)
    return BindingRecord(**fields)


def test_bindings_put_get_overwrite_delete(store):
    assert store.get_binding("lb-1", "lbl-1", "uid-1") is None
    record = binding()
    store.put_binding(record)
    assert store.get_binding("lb-1", "lbl-1", "uid-1") == record
    draining = record.model_copy(update={"state": "draining", "weight": 0, "drain_started_at": 1.5})
    store.put_binding(draining)
    assert store.get_binding("lb-1", "lbl-1", "uid-1") == draining
    assert store.list_bindings() == [draining]
    store.delete_binding("lb-1", "lbl-1", "uid-1")
    assert store.get_binding("lb-1", "lbl-1", "uid-1") is None
    assert store.list_bindings() == []
    store.delete_binding("lb-1", "lbl-1", "uid-1")


def test_list_bindings_filters_combine_and_sort(store):
    records = [
        binding("lb-2", "lbl-a", "uid-2", "web/b"),
        binding("lb-1", "lbl-b", "uid-1", "web/a"),
        binding("lb-1", "lbl-a", "uid-2", "web/a"),
        binding("lb-1", "lbl-a", "uid-1", "web/a"),
        binding("lb-2", "lbl-a", "uid-3", "web/b"),
    ]
    for record in records:
        store.put_binding(record)
    keys = lambda rs: [(r.lb_id, r.listener_id, r.pod_uid) for r in rs]  # noqa: E731
    assert keys(store.list_bindings()) == sorted(keys(records))
    assert keys(store.list_bindings(lb_id="lb-1")) == [
        ("lb-1", "lbl-a", "uid-1"), ("lb-1", "lbl-a", "uid-2"), ("lb-1", "lbl-b", "uid-1"),
    ]  # fmt: skip
    assert keys(store.list_bindings(service="web/b")) == [("lb-2", "lbl-a", "uid-2"), ("lb-2", "lbl-a", "uid-3")]
    assert keys(store.list_bindings(pod_uid="uid-2")) == [("lb-1", "lbl-a", "uid-2"), ("lb-2", "lbl-a", "uid-2")]
    assert keys(store.list_bindings(lb_id="lb-1", pod_uid="uid-1")) == [
        ("lb-1", "lbl-a", "uid-1"), ("lb-1", "lbl-b", "uid-1"),
    ]  # fmt: skip
    assert store.list_bindings(lb_id="lb-2", service="web/a") == []
    assert store.list_bindings(lb_id="lb-404") == []


def test_list_bindings_by_target_address(store):
    for record in (
        binding("lb-1", "lbl-a", "uid-1", "web/a").model_copy(update={"ip": "10.0.0.1"}),
        binding("lb-1", "lbl-b", "uid-1", "web/a").model_copy(update={"ip": "10.0.0.1"}),
        binding("lb-1", "lbl-a", "uid-2", "web/a").model_copy(update={"ip": "10.0.0.11"}),
        binding("lb-2", "lbl-a", "uid-3", "web/b").model_copy(update={"ip": "10.0.0.1"}),
    ):
        store.put_binding(record)
    keys = lambda rs: [(r.lb_id, r.listener_id, r.pod_uid) for r in rs]  # noqa: E731
    assert keys(store.list_bindings(lb_id="lb-1", ip="10.0.0.1")) == [
        ("lb-1", "lbl-a", "uid-1"),
        ("lb-1", "lbl-b", "uid-1"),
    ]
    assert keys(store.list_bindings(ip="10.0.0.1")) == [
        ("lb-1", "lbl-a", "uid-1"), ("lb-1", "lbl-b", "uid-1"), ("lb-2", "lbl-a", "uid-3"),
    ]  # fmt: skip
    assert keys(store.list_bindings(ip="10.0.0.11")) == [("lb-1", "lbl-a", "uid-2")]


def test_list_bindings_by_pod_name(store):
    for record in (
        binding("lb-1", "lbl-a", "uid-1", "web/a").model_copy(update={"namespace": "web", "pod_name": "p-1"}),
        binding("lb-1", "lbl-b", "uid-1", "web/a").model_copy(update={"namespace": "web", "pod_name": "p-1"}),
        binding("lb-1", "lbl-a", "uid-9", "web/a").model_copy(update={"namespace": "web", "pod_name": "p-1"}),
        binding("lb-1", "lbl-a", "uid-2", "web/a").model_copy(update={"namespace": "web", "pod_name": "p-10"}),
        binding("lb-2", "lbl-a", "uid-3", "other/b").model_copy(update={"namespace": "other", "pod_name": "p-1"}),
    ):
        store.put_binding(record)
    keys = lambda rs: [(r.lb_id, r.listener_id, r.pod_uid) for r in rs]  # noqa: E731
    assert keys(store.list_bindings(pods=["web/p-1"])) == [
        ("lb-1", "lbl-a", "uid-1"), ("lb-1", "lbl-a", "uid-9"), ("lb-1", "lbl-b", "uid-1"),
    ]  # fmt: skip
    assert keys(store.list_bindings(pods=["web/p-10", "other/p-1", "web/nope"])) == [
        ("lb-1", "lbl-a", "uid-2"), ("lb-2", "lbl-a", "uid-3"),
    ]  # fmt: skip
    assert keys(store.list_bindings(lb_id="lb-2", pods=["web/p-1", "other/p-1"])) == [("lb-2", "lbl-a", "uid-3")]
    assert store.list_bindings(pods=[]) == []
    many = [f"web/q-{n}" for n in range(1200)] + ["web/p-10"]
    assert keys(store.list_bindings(pods=many)) == [("lb-1", "lbl-a", "uid-2")]
    assert store.list_bindings(lb_id="lb-2", ip="10.0.0.11") == [] and store.list_bindings(ip="10.0.0.") == []


def test_binding_moved_to_another_service_leaves_the_old_index(store):
    store.put_binding(binding(service="web/old"))
    store.put_binding(binding(service="web/new"))
    assert store.list_bindings(service="web/old") == []
    assert [r.service for r in store.list_bindings(service="web/new")] == ["web/new"]
    store.delete_binding("lb-1", "lbl-1", "uid-1")
    assert store.list_bindings(service="web/new") == []
    assert store.list_bindings(pod_uid="uid-1") == []
    assert store.list_bindings(lb_id="lb-1") == []


# ------------------------------------------------------------------------------------------------ leases


def test_lease_acquire_reacquire_and_contention(store, clock):
    now = clock.now()
    lease = store.acquire_lease("clb:lb-1", "a", ttl_s=30, now=now)
    assert (lease.name, lease.holder, lease.expires_at) == ("clb:lb-1", "a", now + 30)
    assert store.current_lease("clb:lb-1", now=now) == lease
    clock.advance(10)
    again = store.acquire_lease("clb:lb-1", "a", ttl_s=30, now=clock.now())
    assert again.token == lease.token
    assert again.expires_at == clock.now() + 30
    assert store.acquire_lease("clb:lb-1", "b", ttl_s=30, now=clock.now()) is None
    assert store.acquire_lease("clb:lb-2", "b", ttl_s=30, now=clock.now()) is not None


def test_expired_lease_goes_to_the_next_holder_with_a_higher_token(store, clock):
    first = store.acquire_lease("clb:lb-1", "a", ttl_s=30, now=clock.now())
    clock.advance(30)
    assert store.current_lease("clb:lb-1", now=clock.now()) is None
    second = store.acquire_lease("clb:lb-1", "b", ttl_s=30, now=clock.now())
    assert second.token > first.token
    assert not store.renew_lease("clb:lb-1", "a", first.token, ttl_s=30, now=clock.now())
    store.release_lease("clb:lb-1", "a", first.token)
    assert store.current_lease("clb:lb-1", now=clock.now()) == second


def test_renew_extends_only_the_current_token(store, clock):
    lease = store.acquire_lease("clb:lb-1", "a", ttl_s=30, now=clock.now())
    clock.advance(25)
    assert store.renew_lease("clb:lb-1", "a", lease.token, ttl_s=30, now=clock.now())
    clock.advance(25)
    assert store.acquire_lease("clb:lb-1", "b", ttl_s=30, now=clock.now()) is None
    assert store.current_lease("clb:lb-1", now=clock.now()).expires_at == clock.now() + 5
    assert not store.renew_lease("clb:lb-1", "a", lease.token + 1, ttl_s=30, now=clock.now())
    assert not store.renew_lease("clb:lb-1", "b", lease.token, ttl_s=30, now=clock.now())


def test_release_frees_the_lease_and_tokens_keep_increasing(store, clock):
    first = store.acquire_lease("clb:lb-1", "a", ttl_s=30, now=clock.now())
    store.release_lease("clb:lb-1", "b", first.token)
    assert store.current_lease("clb:lb-1", now=clock.now()) == first
    store.release_lease("clb:lb-1", "a", first.token)
    assert store.current_lease("clb:lb-1", now=clock.now()) is None
    assert not store.renew_lease("clb:lb-1", "a", first.token, ttl_s=30, now=clock.now())
    second = store.acquire_lease("clb:lb-1", "b", ttl_s=30, now=clock.now())
    store.release_lease("clb:lb-1", "b", second.token)
    third = store.acquire_lease("clb:lb-1", "a", ttl_s=30, now=clock.now())
    assert first.token < second.token < third.token


# ----------------------------------------------------------------------------------------- token buckets


def test_bucket_grants_the_burst_then_hints_the_wait(store, clock):
    now = clock.now()
    grants = [store.take_tokens("clb-write", rate_per_s=20, burst=5, n=1, now=now) for _ in range(5)]
    assert grants == [0.0] * 5
    assert store.take_tokens("clb-write", rate_per_s=20, burst=5, n=1, now=now) == pytest.approx(0.05)
    assert store.take_tokens("clb-write", rate_per_s=20, burst=5, n=3, now=now) == pytest.approx(0.15)
    assert store.take_tokens("other", rate_per_s=20, burst=5, n=5, now=now) == 0.0


def test_bucket_refills_over_fake_time_up_to_the_burst(store, clock):
    for _ in range(4):
        store.take_tokens("b", rate_per_s=2, burst=4, n=1, now=clock.now())
    clock.advance(0.5)
    assert store.take_tokens("b", rate_per_s=2, burst=4, n=1, now=clock.now()) == 0.0
    assert store.take_tokens("b", rate_per_s=2, burst=4, n=1, now=clock.now()) == pytest.approx(0.5)
    clock.advance(1000)
    assert store.take_tokens("b", rate_per_s=2, burst=4, n=4, now=clock.now()) == 0.0
    assert store.take_tokens("b", rate_per_s=2, burst=4, n=0.5, now=clock.now()) == pytest.approx(0.25)


def test_sleeping_exactly_the_hint_is_enough_despite_float_rounding(store, clock):
    for _ in range(50):
        wait = store.take_tokens("b", rate_per_s=20, burst=1, n=1, now=clock.now())
        if wait:
            clock.advance(wait)
            assert store.take_tokens("b", rate_per_s=20, burst=1, n=1, now=clock.now()) == 0.0


def test_bucket_refuses_requests_that_can_never_be_granted(store, clock):
    with pytest.raises(InvalidInput, match="burst"):
        store.take_tokens("b", rate_per_s=1, burst=2, n=3, now=clock.now())
    with pytest.raises(InvalidInput, match="rate_per_s"):
        store.take_tokens("b", rate_per_s=0, burst=2, n=1, now=clock.now())


# --------------------------------------------------------------------------------------------- event log


def event(event_id, received_at, **extra):
    return StoredEvent(id=event_id, received_at=received_at, source="relay", kind="Pod", **extra)


def test_event_append_dedupes_and_round_trips(store, clock):
    original = event("audit-1", clock.now(), summary="pod web/a ready", payload={"uid": "u1", "n": [1, 2.5]})
    assert store.append_event(original, ttl_s=600, now=clock.now())
    assert not store.append_event(event("audit-1", clock.now(), summary="other"), ttl_s=600, now=clock.now())
    assert store.get_event("audit-1", now=clock.now()) == original
    assert store.get_event("missing", now=clock.now()) is None


def test_events_expire_by_ttl_and_can_be_appended_again(store, clock):
    store.append_event(event("e1", clock.now()), ttl_s=60, now=clock.now())
    clock.advance(30)
    store.append_event(event("e2", clock.now()), ttl_s=60, now=clock.now())
    clock.advance(30)
    assert store.get_event("e1", now=clock.now()) is None
    assert [e.id for e in store.list_events(now=clock.now())] == ["e2"]
    assert store.append_event(event("e1", clock.now()), ttl_s=60, now=clock.now())
    assert store.get_event("e1", now=clock.now()) is not None


def test_events_list_newest_first_with_limit(store, clock):
    base = clock.now()
    for i, offset in enumerate([5, 1, 9, 3, 7]):
        store.append_event(event(f"e{i}", base + offset), ttl_s=600, now=base)
    assert [e.id for e in store.list_events(now=base)] == ["e2", "e4", "e0", "e3", "e1"]
    assert [e.id for e in store.list_events(now=base, limit=2)] == ["e2", "e4"]
    assert store.list_events(now=base, limit=0) == []


# ---------------------------------------------------------------------------------------- selector index


def test_selector_index_per_namespace(store):
    a = SelectorEntry(namespace="web", service="b-svc", selector={"app": "b"}, lb_id="lb-1", updated_at=2.0)
    b = SelectorEntry(namespace="web", service="a-svc", selector={"app": "a", "tier": "fe"})
    c = SelectorEntry(namespace="other", service="a-svc", selector={"app": "x"})
    for entry in (a, b, c):
        store.put_selector(entry)
    assert store.list_selectors("web") == [b, a]
    replaced = a.model_copy(update={"selector": {"app": "b2"}})
    store.put_selector(replaced)
    assert store.list_selectors("web") == [b, replaced]
    store.delete_selector("web", "a-svc")
    store.delete_selector("web", "missing")
    assert store.list_selectors("web") == [replaced]
    assert store.list_selectors("other") == [c]
    assert store.list_selectors("empty") == []


# ------------------------------------------------------------------------------------------------- kv


def test_kv_get_many_reads_live_keys_in_one_call(store, clock):
    assert store.kv_get_many([], now=clock.now()) == {}
    store.kv_set("gate:uid-1", "True", ttl_s=None, now=clock.now())
    store.kv_set("gate:uid-2", "False", ttl_s=10, now=clock.now())
    store.kv_set("limit:uid-1", "hostNetwork", ttl_s=None, now=clock.now())
    keys = ["gate:uid-1", "gate:uid-2", "gate:uid-3", "limit:uid-1", "gate:uid-1"]
    assert store.kv_get_many(keys, now=clock.now()) == {
        "gate:uid-1": "True",
        "gate:uid-2": "False",
        "limit:uid-1": "hostNetwork",
    }
    clock.advance(11)
    assert store.kv_get_many(keys, now=clock.now()) == {"gate:uid-1": "True", "limit:uid-1": "hostNetwork"}
    many = [f"gate:wave-{n}" for n in range(1200)]
    for key in many[::7]:
        store.kv_set(key, "True", ttl_s=None, now=clock.now())
    assert store.kv_get_many(many, now=clock.now()) == {key: "True" for key in many[::7]}


def test_kv_set_get_ttl_delete(store, clock):
    assert store.kv_get("checkpoint:web/a", now=clock.now()) is None
    store.kv_set("checkpoint:web/a", "hash-1", ttl_s=None, now=clock.now())
    store.kv_set("gate:uid-1", "False", ttl_s=10, now=clock.now())
    clock.advance(9.5)
    assert store.kv_get("gate:uid-1", now=clock.now()) == "False"
    clock.advance(0.5)
    assert store.kv_get("gate:uid-1", now=clock.now()) is None
    clock.advance(10**6)
    assert store.kv_get("checkpoint:web/a", now=clock.now()) == "hash-1"
    store.kv_set("checkpoint:web/a", "hash-2", ttl_s=5, now=clock.now())
    assert store.kv_get("checkpoint:web/a", now=clock.now()) == "hash-2"
    store.kv_delete("checkpoint:web/a")
    store.kv_delete("checkpoint:web/a")
    assert store.kv_get("checkpoint:web/a", now=clock.now()) is None


def test_kv_set_if_absent_respects_live_values_only(store, clock):
    assert store.kv_set_if_absent("dedupe:1", "x", ttl_s=60, now=clock.now())
    assert not store.kv_set_if_absent("dedupe:1", "y", ttl_s=60, now=clock.now())
    assert store.kv_get("dedupe:1", now=clock.now()) == "x"
    clock.advance(60)
    assert store.kv_set_if_absent("dedupe:1", "z", ttl_s=None, now=clock.now())
    clock.advance(10**6)
    assert not store.kv_set_if_absent("dedupe:1", "w", ttl_s=None, now=clock.now())
    assert store.kv_get("dedupe:1", now=clock.now()) == "z"


# ---------------------------------------------------------------------------------------- pending sets


def test_pending_sets_dedupe_and_take_everything_once(store):
    store.pending_add("lb:lb-1", ["web/b", "web/a"])
    store.pending_add("lb:lb-1", ["web/a", "web/c"])
    store.pending_add("lb:lb-1", [])
    store.pending_add("lb:lb-2", ["web/z"])
    assert store.pending_members("lb:lb-1") == ["web/a", "web/b", "web/c"]
    assert store.pending_members("lb:lb-1") == ["web/a", "web/b", "web/c"], "reading removes nothing"
    assert store.pending_take("lb:lb-1") == ["web/a", "web/b", "web/c"]
    assert store.pending_take("lb:lb-1") == []
    assert store.pending_take("lb:lb-2") == ["web/z"]
    assert store.pending_take("lb:never") == []


# -------------------------------------------------------------------------------------------- schedule

VISIBILITY = 120.0


def take(store, clock, claim, limit=10):
    return store.schedule_take_due(now=clock.now(), limit=limit, visibility_s=VISIBILITY, claim=claim)


def test_schedule_takes_only_due_items_earliest_first(store, clock):
    now = clock.now()
    store.schedule_put("b", now + 10, '{"n":2}')
    store.schedule_put("a", now + 5, '{"n":1}')
    store.schedule_put("c", now + 10.25, '{"n":3}')
    assert take(store, clock, "c1") == []
    clock.advance(10)
    taken = take(store, clock, "c1")
    assert [(i.key, i.due_at, i.payload, i.claim, i.attempts) for i in taken] == [
        ("a", now + 5, '{"n":1}', "c1", 1),
        ("b", now + 10, '{"n":2}', "c1", 1),
    ]
    assert [i.key for i in store.schedule_list()] == ["c", "a", "b"]  # a, b now due after the visibility


def test_schedule_claimed_items_are_not_taken_twice_and_come_back_after_the_visibility(store, clock):
    store.schedule_put("k", clock.now(), "p")
    assert [i.key for i in take(store, clock, "first")] == ["k"]
    assert take(store, clock, "second") == []
    clock.advance(VISIBILITY - 1)
    assert take(store, clock, "second") == []
    clock.advance(1)
    [again] = take(store, clock, "second")
    assert (again.claim, again.attempts, again.payload) == ("second", 2, "p")
    assert store.schedule_complete("k", "first") is False  # the lapsed claim no longer completes it
    assert store.schedule_complete("k", "second") is True
    assert store.schedule_list() == []
    assert store.schedule_complete("k", "second") is False


def test_schedule_limit_and_reschedule_moves_the_key_and_drops_its_claim(store, clock):
    for n in range(5):
        store.schedule_put(f"k{n}", clock.now() - n, str(n))
    assert [i.key for i in take(store, clock, "c1", limit=2)] == ["k4", "k3"]
    store.schedule_put("k4", clock.now() + 30, "moved")
    assert store.schedule_complete("k4", "c1") is False  # re-scheduled: the old taker's completion is void
    [item] = [i for i in store.schedule_list() if i.key == "k4"]
    assert (item.due_at, item.payload, item.claim, item.attempts) == (clock.now() + 30, "moved", "", 0)
    assert [i.key for i in take(store, clock, "c2", limit=10)] == ["k2", "k1", "k0"]
    assert take(store, clock, "c3", limit=0) == []


def test_schedule_cancel_removes_claimed_or_not(store, clock):
    store.schedule_put("a", clock.now(), "1")
    store.schedule_put("b", clock.now(), "2")
    take(store, clock, "c1", limit=1)
    store.schedule_cancel("a")
    store.schedule_cancel("b")
    store.schedule_cancel("missing")
    assert store.schedule_list() == []
    assert take(store, clock, "c2") == []
