from __future__ import annotations

import json
from typing import Any

from relay.batcher import Batcher, BatcherConfig
from relay.filters import SelectorCache, keep_audit_event, keep_watch_event
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


def _item(i: int) -> WatchItem:
    return WatchItem(type="ADDED", resource="pods", object={"metadata": {"name": f"p{i}"}})


def test_offer_never_blocks_and_drops_oldest() -> None:
    batcher = Batcher(BatcherConfig(router_url="http://router", hmac_key=KEY, buffer_size=3, batch_size=10))
    for i in range(5):
        batcher.offer(_item(i))
    assert batcher.pending() == 3 and batcher.counters["dropped_overflow"] == 2
    assert [it.object["metadata"]["name"] for it in batcher._take(force=True)] == ["p2", "p3", "p4"]


def test_send_signs_retries_and_gives_up() -> None:
    posts: list[tuple[bytes, dict[str, str]]] = []
    statuses = iter([503, 0, 200])

    def post(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> int:
        posts.append((body, headers))
        status = next(statuses)
        if status == 0:
            raise ConnectionResetError("router went away")
        return status

    config = BatcherConfig(router_url="http://router", hmac_key=KEY, backoff_base_s=0.001, backoff_cap_s=0.002)
    batcher = Batcher(config, post=post)
    assert batcher.send([AuditItem(event={"auditID": "a"}), _item(1)])
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
    assert batcher.counters["retries"] == 2 and batcher.counters["batches_sent"] == 1
    rejected = Batcher(config, post=lambda *a: 401)
    assert not rejected.send([_item(1)]) and rejected.counters["batches_rejected"] == 1
    down = Batcher(
        BatcherConfig(router_url="x", hmac_key=KEY, max_attempts=2, backoff_base_s=0.001), post=lambda *a: 500
    )
    assert not down.send([_item(1)])
    assert down.counters["batches_dropped"] == 1 and down.counters["dropped_events"] == 1
