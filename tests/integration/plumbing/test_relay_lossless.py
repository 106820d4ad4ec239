"""The relay loses nothing relevant and lets no poison event take its neighbours with it (issue 14 #3, #12).

A fake router (the batcher's post function) parses every batch exactly as the real router does and
records what reached it. Poison audit events (wrong-typed objectRef fields, a word for a status code,
a Pod body with wrong types) are answered by index and skipped while their neighbours are forwarded; a
flood with the router down is held per object (newest event only) and delivered in full once the
router is back; a batch the router refuses costs only the item it refuses; and the audit endpoint
answers 200 only once its events are delivered, so the API server's retries cover a relay crash.
"""

from __future__ import annotations

import copy
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from relay.app import Relay
from relay.auth import AuditAuth
from relay.batcher import Batcher, BatcherConfig
from shared.events.relay import AuditItem, RelayBatch
from shared.normalize import normalize_audit
from tests.conftest import load_event
from tests.support.polling import eventually


class FakeRouter:
    """Records the newest resourceVersion per object it received; can be down or refuse poison."""

    def __init__(self) -> None:
        self.up = threading.Event()
        self.up.set()
        self.lock = threading.Lock()
        self.objects: dict[str, str] = {}
        self.items = 0
        self.refuse_marker: str | None = None

    def post(self, _url: str, body: bytes, _headers: dict[str, str], _timeout_s: float) -> int:
        if not self.up.is_set():
            raise OSError("router down")
        batch = RelayBatch.parse(body)
        if self.refuse_marker and self.refuse_marker.encode() in body:
            return 400
        with self.lock:
            for item in batch.items:
                assert isinstance(item, AuditItem)
                change = normalize_audit(item.event)
                assert change is not None
                self.items += 1
                key = f"{change.kind}/{change.namespace}/{change.name}"
                previous = self.objects.get(key, "0")
                if int(change.resource_version or 0) >= int(previous):
                    self.objects[key] = change.resource_version
        return 200


@pytest.fixture
def router() -> FakeRouter:
    return FakeRouter()


def _relay(router: FakeRouter, **config: Any) -> Relay:
    values: dict[str, Any] = {"router_url": "http://router/", "hmac_key": b"k", "window_s": 0.05}
    values.update(config)
    batcher = Batcher(BatcherConfig(**values), post=router.post)
    return Relay(batcher=batcher, sources=["audit"], audit_auth=AuditAuth(allow_unauthenticated=True))


@pytest.fixture
def relay(router: FakeRouter) -> Iterator[Relay]:
    relay = _relay(router, backoff_base_s=0.01, backoff_cap_s=0.05)
    relay.start()
    yield relay
    router.up.set()
    relay.stop()


def _pod_event(name: str, rv: int, audit_id: str | None = None) -> dict[str, Any]:
    event = copy.deepcopy(load_event("audit_eventlist")["items"][1])
    event["auditID"] = audit_id or f"{name}-{rv}"
    event["objectRef"]["name"] = name
    event["objectRef"].pop("resourceVersion", None)
    event["objectRef"]["uid"] = f"uid-{name}"
    body = event["responseObject"]
    body["metadata"]["name"] = name
    body["metadata"]["uid"] = f"uid-{name}"
    body["metadata"]["resourceVersion"] = str(rv)
    return event


def _event_list(items: list[Any]) -> dict[str, Any]:
    return {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": items}


def _post(relay: Relay, payload: object) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(relay.url + "/", data=json.dumps(payload).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _poison() -> list[dict[str, Any]]:
    wrong_ref = _pod_event("bad-ref", 5)
    wrong_ref["objectRef"]["namespace"] = ["shop"]
    wrong_ref["objectRef"]["subresource"] = {"x": 1}
    word_code = _pod_event("bad-code", 5)
    word_code["responseStatus"] = {"code": "created"}
    list_labels = _pod_event("bad-labels", 5)
    list_labels["responseObject"]["metadata"]["labels"] = [1]
    wrong_spec = _pod_event("bad-spec", 5)
    wrong_spec["responseObject"]["spec"] = "not an object"
    wrong_spec["responseObject"]["status"] = {"podIP": 7, "conditions": "none"}
    return [wrong_ref, word_code, list_labels, wrong_spec]


def test_poison_events_are_reported_by_index_and_their_neighbours_forwarded(relay: Relay, router: FakeRouter) -> None:
    items = [_pod_event("good-a", 3), *_poison(), 17, _pod_event("good-b", 4)]
    status, answer = _post(relay, _event_list(items))
    assert status == 200, answer
    assert sorted(r["index"] for r in answer["rejected"]) == [1, 2, 3, 4, 5]
    assert all(r["reason"] for r in answer["rejected"])
    eventually(lambda: len(router.objects) == 2, "the two valid events at the router")
    assert set(router.objects) == {"Pod/shop/good-a", "Pod/shop/good-b"}
    assert relay.stats()["relay"]["audit_malformed"] == 5


def test_a_flood_with_the_router_down_loses_no_object(router: FakeRouter) -> None:
    relay = _relay(router, backoff_base_s=0.01, backoff_cap_s=0.05)
    relay.start()
    try:
        router.up.clear()
        distinct = 12_000  # more than the old buffer's 10,000 items
        for start in range(0, distinct, 400):
            relay._on_event_list(_event_list([_pod_event(f"p{i}", 10) for i in range(start, start + 400)]))
        for rv in range(11, 31):  # the same 100 objects, updated again and again
            relay._on_event_list(_event_list([_pod_event(f"p{i}", rv) for i in range(100)]))
        pending = relay.batcher.pending()
        assert pending == distinct, "one entry per object while the router is down"
        router.up.set()
        # A batch in flight when the router went down holds p0..p99 at rv 10 and is delivered first; their
        # newer entries wait behind it. So wait for the relay to hold nothing, not for the first copy of each.
        eventually(lambda: relay.batcher.pending() == 0, "the relay to deliver everything it held", timeout=90)
        assert len(router.objects) == distinct, "every object at the router"
        assert all(router.objects[f"Pod/shop/p{i}"] == "30" for i in range(100)), "the newest version wins"
        assert relay.batcher.counters["events_dropped"] == 0
    finally:
        relay.stop()


def test_a_refused_batch_costs_only_the_refused_item(relay: Relay, router: FakeRouter) -> None:
    router.refuse_marker = "refused-by-router"
    items = [_pod_event(f"n{i}", 2) for i in range(30)]
    items[17] = _pod_event("refused-by-router", 2)
    relay._on_event_list(_event_list(items))
    eventually(lambda: len(router.objects) == 29, "the 29 accepted objects at the router")
    assert "Pod/shop/refused-by-router" not in router.objects
    eventually(lambda: relay.batcher.counters["events_rejected"] == 1, "one rejected event counted")


def test_the_audit_answer_waits_for_delivery(router: FakeRouter) -> None:
    relay = _relay(router, backoff_base_s=0.01, backoff_cap_s=0.05, ack_timeout_s=0.5)
    relay.start()
    try:
        router.up.clear()
        status, answer = _post(relay, _event_list([_pod_event("late", 3)]))
        assert status == 503, "not delivered: the API server must retry"
        assert "retry" in answer["message"]
        router.up.set()
        status, answer = _post(relay, _event_list([_pod_event("late", 3)]))  # the API server's retry
        assert status == 200
        assert router.objects == {"Pod/shop/late": "3"}
    finally:
        relay.stop()


def test_normalised_forwarding_drops_no_fact_the_router_reads() -> None:
    """The relay trims what the router never reads (requestObject, managedFields); the facts stay equal."""
    from relay.app import trim_audit_event

    for raw in load_event("audit_eventlist")["items"]:
        event = copy.deepcopy(raw)
        if isinstance(event.get("responseObject"), dict):
            event["responseObject"].setdefault("metadata", {})["managedFields"] = [{"manager": "x" * 1000}]
        event["requestObject"] = {"big": "y" * 1000}
        trimmed = trim_audit_event(event)
        assert "requestObject" not in trimmed
        assert normalize_audit(trimmed) == normalize_audit(event)
