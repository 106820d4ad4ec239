"""The object store keeps the apiserver's write semantics."""

from __future__ import annotations

import random
from datetime import datetime, timezone

import pytest

from emulators.cluster.context import WriteRecord
from emulators.cluster.errors import ApiError
from emulators.cluster.patching import JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH
from emulators.cluster.store import ObjectStore

NOW = datetime(2025, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def store() -> ObjectStore:
    return ObjectStore(now=lambda: NOW, rng=random.Random(7), history_size=20)


def pod_body(name: str | None = "web-1", labels: dict | None = None) -> dict:
    meta: dict = {"labels": labels or {"app": "web"}}
    if name:
        meta["name"] = name
    else:
        meta["generateName"] = "web-"
    return {"metadata": meta, "spec": {"containers": [{"name": "app", "image": "nginx:1"}]}}


def test_create_fills_server_fields_and_namespace_from_the_url(store: ObjectStore) -> None:
    pod = store.create("pods", "shop", pod_body(None))
    meta = pod["metadata"]
    assert meta["name"].startswith("web-") and len(meta["name"]) == len("web-") + 5
    assert meta["namespace"] == "shop"
    assert meta["uid"] and meta["creationTimestamp"] == "2025-01-01T00:00:00Z"
    assert meta["generation"] == 1
    assert pod["kind"] == "Pod" and pod["apiVersion"] == "v1"
    assert pod["status"] == {"phase": "Pending", "qosClass": "BestEffort"}
    assert store.get("namespaces", None, "shop") is not None  # created implicitly


def test_resource_versions_are_global_and_increasing(store: ObjectStore) -> None:
    a = store.create("configmaps", "ns", {"metadata": {"name": "a"}})
    b = store.create("services", "ns", {"metadata": {"name": "b"}, "spec": {"ports": [{"port": 80}]}})
    assert int(b["metadata"]["resourceVersion"]) > int(a["metadata"]["resourceVersion"])
    _, list_rv = store.list("configmaps", "ns")
    assert list_rv == b["metadata"]["resourceVersion"]


def test_duplicate_create_is_already_exists(store: ObjectStore) -> None:
    store.create("pods", "ns", pod_body())
    with pytest.raises(ApiError) as caught:
        store.create("pods", "ns", pod_body())
    assert caught.value.status == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'pods "web-1" already exists',
        "reason": "AlreadyExists",
        "details": {"name": "web-1", "kind": "pods"},
        "code": 409,
    }


def test_stale_resource_version_on_put_and_patch_is_a_conflict(store: ObjectStore) -> None:
    first = store.create("configmaps", "ns", {"metadata": {"name": "c"}, "data": {"a": "1"}})
    store.patch("configmaps", "ns", "c", {"data": {"a": "2"}}, MERGE_PATCH)
    with pytest.raises(ApiError) as put:
        store.replace("configmaps", "ns", "c", first)
    assert put.value.code == 409 and put.value.reason == "Conflict"
    stale = {"metadata": {"resourceVersion": first["metadata"]["resourceVersion"]}, "data": {"a": "3"}}
    with pytest.raises(ApiError) as patch:
        store.patch("configmaps", "ns", "c", stale, MERGE_PATCH)
    assert patch.value.status["message"].startswith('Operation cannot be fulfilled on configmaps "c"')


def test_uid_precondition_in_a_patch(store: ObjectStore) -> None:
    pod = store.create("pods", "ns", pod_body())
    with pytest.raises(ApiError) as caught:
        store.patch(
            "pods",
            "ns",
            "web-1",
            {"metadata": {"uid": "other"}, "status": {"phase": "Running"}},
            STRATEGIC_MERGE_PATCH,
            subresource="status",
        )
    # As the real API server: the patch would change the immutable uid (a 422, not a 409).
    assert caught.value.code == 422 and 'metadata.uid: Invalid value: "other": field is immutable' in str(caught.value)
    ok = store.patch(
        "pods",
        "ns",
        "web-1",
        {"metadata": {"uid": pod["metadata"]["uid"]}, "status": {"phase": "Running"}},
        STRATEGIC_MERGE_PATCH,
        subresource="status",
    )
    assert ok["status"]["phase"] == "Running"


def test_status_subresource_isolation(store: ObjectStore) -> None:
    store.create("pods", "ns", pod_body())
    main = store.patch(
        "pods", "ns", "web-1", {"status": {"phase": "Running"}, "metadata": {"labels": {"x": "1"}}}, MERGE_PATCH
    )
    assert main["status"]["phase"] == "Pending" and main["metadata"]["labels"]["x"] == "1"
    status = store.patch(
        "pods",
        "ns",
        "web-1",
        {"spec": {"nodeName": "n9"}, "metadata": {"labels": {"y": "2"}}, "status": {"phase": "Running"}},
        MERGE_PATCH,
        subresource="status",
    )
    assert status["status"]["phase"] == "Running"
    assert "nodeName" not in status["spec"]
    assert status["metadata"]["labels"]["y"] == "2"  # pods/status keeps label changes, like podStatusStrategy


def test_generation_bumps_only_on_spec_changes(store: ObjectStore) -> None:
    body = {
        "metadata": {"name": "d"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "d"}},
            "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
        },
    }
    store.create("deployments", "ns", body)
    labelled = store.patch("deployments", "ns", "d", {"metadata": {"labels": {"a": "b"}}}, STRATEGIC_MERGE_PATCH)
    assert labelled["metadata"]["generation"] == 1
    status = store.patch("deployments", "ns", "d", {"status": {"replicas": 1}}, MERGE_PATCH, subresource="status")
    assert status["metadata"]["generation"] == 1 and status["status"]["replicas"] == 1
    scaled = store.patch("deployments", "ns", "d", {"spec": {"replicas": 3}}, STRATEGIC_MERGE_PATCH)
    assert scaled["metadata"]["generation"] == 2


def test_noop_patch_does_not_bump_the_resource_version(store: ObjectStore) -> None:
    pod = store.create("pods", "ns", pod_body())
    same = store.patch("pods", "ns", "web-1", {"metadata": {"labels": {"app": "web"}}}, STRATEGIC_MERGE_PATCH)
    assert same["metadata"]["resourceVersion"] == pod["metadata"]["resourceVersion"]


def test_pod_spec_is_immutable_but_images_may_change(store: ObjectStore) -> None:
    store.create("pods", "ns", pod_body())
    with pytest.raises(ApiError) as caught:
        store.patch(
            "pods", "ns", "web-1", {"spec": {"readinessGates": [{"conditionType": "g"}]}}, STRATEGIC_MERGE_PATCH
        )
    assert caught.value.code == 422 and caught.value.reason == "Invalid"
    changed = store.patch(
        "pods", "ns", "web-1", {"spec": {"containers": [{"name": "app", "image": "nginx:2"}]}}, STRATEGIC_MERGE_PATCH
    )
    assert changed["spec"]["containers"][0]["image"] == "nginx:2"


def test_put_on_a_custom_resource_needs_a_resource_version(store: ObjectStore) -> None:
    store.create("tkeserviceconfigs", "ns", {"metadata": {"name": "t"}, "spec": {}})
    with pytest.raises(ApiError) as caught:
        store.replace("tkeserviceconfigs", "ns", "t", {"metadata": {"name": "t"}, "spec": {"x": 1}})
    assert caught.value.code == 422


def test_graceful_pod_deletion_then_final_delete(store: ObjectStore) -> None:
    store.create("pods", "ns", pod_body())
    store.mutate("pods", "ns", "web-1", lambda p: {**p, "spec": {**p["spec"], "nodeName": "n1"}})
    terminating = store.delete("pods", "ns", "web-1")
    assert terminating is not None
    assert terminating["metadata"]["deletionGracePeriodSeconds"] == 30
    assert terminating["metadata"]["deletionTimestamp"] == "2025-01-01T00:00:30Z"
    assert store.get("pods", "ns", "web-1") is not None
    store.delete("pods", "ns", "web-1", grace_period_seconds=0, actor="system:node:n1")
    assert store.get("pods", "ns", "web-1") is None


def test_unscheduled_pod_is_deleted_at_once(store: ObjectStore) -> None:
    store.create("pods", "ns", pod_body())
    store.delete("pods", "ns", "web-1")
    assert store.get("pods", "ns", "web-1") is None


def test_finalizers_block_removal_until_cleared(store: ObjectStore) -> None:
    store.create("configmaps", "ns", {"metadata": {"name": "c", "finalizers": ["x/y"]}})
    pending = store.delete("configmaps", "ns", "c")
    assert pending is not None and pending["metadata"]["deletionTimestamp"]
    assert store.get("configmaps", "ns", "c") is not None
    store.patch("configmaps", "ns", "c", {"metadata": {"finalizers": None}}, MERGE_PATCH)
    assert store.get("configmaps", "ns", "c") is None


def test_owner_deletion_collects_dependents(store: ObjectStore) -> None:
    owner = store.create("configmaps", "ns", {"metadata": {"name": "owner"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    store.create("configmaps", "ns", {"metadata": {"name": "child", "ownerReferences": [ref]}})
    store.delete("configmaps", "ns", "owner")
    assert store.get("configmaps", "ns", "child") is None


def test_mutate_returning_none_changes_nothing(store: ObjectStore) -> None:
    pod = store.create("pods", "ns", pod_body())
    assert store.mutate("pods", "ns", "web-1", lambda _p: None) is None
    assert store.get("pods", "ns", "web-1")["metadata"]["resourceVersion"] == pod["metadata"]["resourceVersion"]
    with pytest.raises(ApiError) as caught:
        store.mutate("pods", "ns", "nope", lambda p: p)
    assert caught.value.code == 404


def test_scale_subresource_reads_and_writes_replicas(store: ObjectStore) -> None:
    store.create(
        "replicasets",
        "ns",
        {
            "metadata": {"name": "rs"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
            },
        },
    )
    scale = store.patch("replicasets", "ns", "rs", {"spec": {"replicas": 5}}, MERGE_PATCH, subresource="scale")
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 5 and scale["status"]["selector"] == "a=b"
    assert store.get("replicasets", "ns", "rs")["spec"]["replicas"] == 5


def test_subscribers_see_every_change_in_order_and_may_write(store: ObjectStore) -> None:
    seen: list[tuple[str, str, str]] = []

    def on_change(event_type: str, resource: str, obj: dict) -> None:
        seen.append((event_type, resource, obj["metadata"]["resourceVersion"]))
        if resource == "pods" and event_type == "ADDED":
            store.create("configmaps", "ns", {"metadata": {"name": "side-effect"}})

    unsubscribe = store.subscribe(on_change)
    store.create("pods", "ns", pod_body())
    unsubscribe()
    store.create("configmaps", "ns", {"metadata": {"name": "unseen"}})
    assert [s[:2] for s in seen] == [("ADDED", "namespaces"), ("ADDED", "pods"), ("ADDED", "configmaps")]
    assert [int(s[2]) for s in seen] == sorted(int(s[2]) for s in seen)


def test_watch_replays_history_filters_by_selector_and_expires(store: ObjectStore) -> None:
    start = store.create("pods", "ns", pod_body("a", {"app": "web"}))["metadata"]["resourceVersion"]
    store.create("pods", "ns", pod_body("b", {"app": "db"}))
    store.patch("pods", "ns", "a", {"metadata": {"labels": {"app": "other"}}}, STRATEGIC_MERGE_PATCH)
    stream = store.watch("pods", "ns", start, label_selector="app=web")
    event = stream.next_event(0)
    assert event is not None and event["type"] == "DELETED"  # "a" stopped matching the selector
    assert stream.next_event(0) is None
    stream.close()
    for i in range(25):
        store.create("configmaps", "ns", {"metadata": {"name": f"c{i}"}})
    expired = store.watch("pods", "ns", start)
    error = expired.next_event(0)
    assert error is not None and error["type"] == "ERROR"
    assert error["object"]["code"] == 410 and error["object"]["reason"] == "Expired"
    assert error["object"]["message"].startswith(f"too old resource version: {start} (")


def test_watch_without_resource_version_starts_with_synthetic_added(store: ObjectStore) -> None:
    store.create("pods", "ns", pod_body("a"))
    stream = store.watch("pods", "ns")
    first = stream.next_event(0)
    assert first is not None and first["type"] == "ADDED" and first["object"]["metadata"]["name"] == "a"
    store.create("pods", "ns", pod_body("b"))
    second = stream.next_event(0)
    assert second is not None and second["object"]["metadata"]["name"] == "b"
    stream.close()


def test_every_write_is_reported_to_the_audit_sink(store: ObjectStore) -> None:
    records: list[WriteRecord] = []
    store.audit_sink = records.append
    store.create("pods", "ns", pod_body(None))
    name = records[-1].response_object["metadata"]["name"]
    patch = [{"op": "add", "path": "/metadata/labels/x", "value": "1"}]
    store.patch("pods", "ns", name, patch, JSON_PATCH)
    with pytest.raises(ApiError):
        store.patch("pods", "ns", "missing", patch, JSON_PATCH)
    create, patched, failed = records
    assert create.verb == "create" and create.name == "" and create.response_status["code"] == 201
    assert create.request.request_uri == "/api/v1/namespaces/ns/pods"
    assert patched.request_object == patch and patched.response_object["metadata"]["labels"]["x"] == "1"
    assert failed.response_status["code"] == 404
