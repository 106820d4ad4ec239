from __future__ import annotations

import json
from typing import Any

from relay.batcher import Batcher, BatcherConfig
from relay.filters import SelectorCache, keep_audit_event, keep_watch_event
from relay.pending import Ticket
from shared.events.relay import AuditItem, RelayBatch, WatchItem
from shared.signing import verify_batch
from tests.conftest import load_event

KEY = b"relay-key"


def service(name: str, selector: dict[str, str], direct: bool = True) -> dict[str, Any]:
    annotations = {"service.cloud.tencent.com/direct-access": "true"} if direct else {}
    return {
        "kind": "Service",
        "metadata": {"name": name, "namespace": "shop", "annotations": annotations},
        "spec": {"type": "LoadBalancer", "selector": selector},
    }


def pod(labels: dict[str, str], gated: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": []}
    if gated:
        spec["readinessGates"] = [{"conditionType": "cloud.tencent.com/load-balancer-backendgroup-ready"}]
    return {"kind": "Pod", "metadata": {"name": "p", "namespace": "shop", "labels": labels}, "spec": spec}


def test_selector_cache_filters_pods_once_warm() -> None:
    cache = SelectorCache()
    assert keep_watch_event("ADDED", "pods", pod({"app": "other"}), cache)  # cold: keep everything
    keep_watch_event("ADDED", "services", service("web", {"app": "web"}), cache)
    keep_watch_event("ADDED", "services", service("plain", {"app": "other"}, direct=False), cache)
    cache.mark_warm()
    assert keep_watch_event("MODIFIED", "pods", pod({"app": "web", "x": "1"}), cache)
    assert not keep_watch_event("MODIFIED", "pods", pod({"app": "other"}), cache)
    assert keep_watch_event("MODIFIED", "pods", pod({"app": "other"}, gated=True), cache)  # release must happen
    keep_watch_event("DELETED", "services", service("web", {"app": "web"}), cache)
    assert not keep_watch_event("MODIFIED", "pods", pod({"app": "web"}), cache)
    other_cm = {"metadata": {"name": "coredns", "namespace": "kube-system"}}
    assert not keep_watch_event("MODIFIED", "configmaps", other_cm, cache)


def test_audit_filter_drops_reads_failures_and_noise() -> None:
    cache = SelectorCache()
    items = load_event("audit_eventlist")["items"]
    kept = [keep_audit_event(e, cache) for e in items]
    assert kept == [True, True, False, True, False, False]
    assert cache.size() == 1  # learned the direct-access Service from the audit body
    cache.mark_warm()
    stray = json.loads(json.dumps(items[1]))
    stray["responseObject"]["metadata"]["labels"] = {"app": "other"}
    stray["responseObject"]["spec"].pop("readinessGates")
    assert not keep_audit_event(stray, cache)
    lease = {"stage": "ResponseComplete", "verb": "update", "objectRef": {"resource": "leases"}}
    assert not keep_audit_event(lease, cache)


def _item(i: int, rv: int = 1) -> bytes:
    item = WatchItem(type="ADDED", resource="pods", object={"metadata": {"name": f"p{i}", "resourceVersion": str(rv)}})
    return json.dumps(item.model_dump(by_alias=True)).encode()


def _names(entries: list[Any]) -> list[str]:
    return [json.loads(e.packed)["object"]["metadata"]["name"] for e in entries]


def test_offer_keeps_the_newest_event_per_object_and_never_drops() -> None:
    batcher = Batcher(BatcherConfig(router_url="http://router", hmac_key=KEY, batch_size=10))
    for rv in (1, 3, 2):  # 2 arrives late: the pending 3 stays
        batcher.offer("Pod/shop/p0/u0", str(rv), False, _item(0, rv))
    for i in range(1, 5):
        batcher.offer(f"Pod/shop/p{i}/u{i}", "1", False, _item(i))
    assert batcher.pending() == 5 and batcher.buffer.superseded == 2
    taken = batcher.buffer.take(10)
    assert _names(taken) == ["p0", "p1", "p2", "p3", "p4"]  # first-arrival order
    assert json.loads(taken[0].packed)["object"]["metadata"]["resourceVersion"] == "3"


def test_a_batch_in_flight_still_counts_as_pending_once_per_object() -> None:
    batcher = Batcher(BatcherConfig(router_url="http://router", hmac_key=KEY, batch_size=3))
    for i in range(5):
        batcher.offer(f"k{i}", "1", False, _item(i))
    taken = batcher.buffer.take(3)  # the sender holds k0..k2 while it waits for the router
    assert batcher.pending() == 5 and len(batcher.buffer) == 2
    batcher.offer("k0", "2", False, _item(0, 2))  # an update of an object in flight is still one object
    assert batcher.pending() == 5
    batcher.buffer.requeue(taken)  # the router failed: merged with the newer k0
    assert batcher.pending() == 5 and len(batcher.buffer) == 5
    batcher.buffer.ack(batcher.buffer.take(5))
    assert batcher.pending() == 0


def test_a_delete_supersedes_the_update_at_its_version() -> None:
    batcher = Batcher(BatcherConfig(router_url="http://router", hmac_key=KEY))
    batcher.offer("k", "7", True, b"delete")
    batcher.offer("k", "7", False, b"update")
    assert [e.packed for e in batcher.buffer.take(1)] == [b"delete"]


def test_send_signs_and_retries_without_end_keeping_the_batch() -> None:
    posts: list[tuple[bytes, dict[str, str]]] = []
    statuses = iter([503, 0, 401, 200])

    def post(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> int:
        posts.append((body, headers))
        status = next(statuses)
        if status == 0:
            raise ConnectionResetError("router went away")
        return status

    config = BatcherConfig(router_url="http://router", hmac_key=KEY, backoff_base_s=0.001, backoff_cap_s=0.002)
    batcher = Batcher(config, post=post)
    ticket = Ticket()
    batcher.offer("a", "1", False, json.dumps(AuditItem(event={"auditID": "a"}).model_dump()).encode(), ticket)
    batcher.offer("b", "1", False, _item(1), ticket)
    results = [batcher._send_next() for _ in range(4)]
    assert results == [False, False, False, True] and ticket.done and batcher.pending() == 0
    body, headers = posts[-1]
    batch = RelayBatch.parse(body)
    assert headers["X-Clb-Direct-Batch-Id"] == batch.batch_id and len(batch.items) == 2
    verify_batch(
        KEY,
        body,
        timestamp=headers["X-Clb-Direct-Timestamp"],
        signature=headers["X-Clb-Direct-Signature"],
        now=float(headers["X-Clb-Direct-Timestamp"]),
        max_skew_s=5,
    )
    assert batcher.counters["retries"] == 3 and batcher.counters["batches_sent"] == 1


def test_a_refused_batch_is_halved_until_only_the_refused_item_is_lost() -> None:
    def post(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> int:
        return 400 if b'"p5"' in body else 200

    batcher = Batcher(BatcherConfig(router_url="http://router", hmac_key=KEY, batch_size=8), post=post)
    for i in range(8):
        batcher.offer(f"k{i}", "1", False, _item(i))
    assert batcher._send_next()
    assert batcher.counters["events_rejected"] == 1 and batcher.counters["events_sent"] == 7
    assert batcher.pending() == 0


def test_a_backlog_is_held_compressed_and_comes_back_intact() -> None:
    batcher = Batcher(BatcherConfig(router_url="http://router", hmac_key=KEY))
    batcher.buffer = type(batcher.buffer)(compress_above=2)
    bodies = [_item(i) for i in range(10)]
    for i, body in enumerate(bodies):
        batcher.offer(f"k{i}", "1", False, body)
    entries = batcher.buffer.take(10)
    assert sum(len(e.packed) for e in entries) < sum(len(b) for b in bodies)
    assert [batcher.buffer.body(e) for e in entries] == bodies
