"""ReplicaSet controller rules: which Pods to delete first, what the status counts (§6.2)."""

from __future__ import annotations

from typing import Any

from emulators.cluster.replicaset import deletion_order, is_active, pod_from_template, replicaset_status
from emulators.cluster.simclock import format_time

T0 = 1_700_000_000.0
RS_UID = "rs-uid"


def _pod(
    name: str,
    *,
    node: str | None = "node-1",
    phase: str = "Running",
    ready_at: float | None = None,
    restarts: int = 0,
    created: float = T0,
    deleting: bool = False,
) -> dict[str, Any]:
    conditions = [
        {"type": "Ready", "status": "True" if ready_at is not None else "False"}
        | ({"lastTransitionTime": format_time(ready_at)} if ready_at is not None else {})
    ]
    meta: dict[str, Any] = {
        "name": name,
        "creationTimestamp": format_time(created),
        "labels": {"app": "web"},
        "ownerReferences": [{"kind": "ReplicaSet", "uid": RS_UID, "controller": True}],
    }
    if deleting:
        meta["deletionTimestamp"] = format_time(created + 30)
    return {
        "metadata": meta,
        "spec": {"nodeName": node} if node else {},
        "status": {"phase": phase, "conditions": conditions, "containerStatuses": [{"restartCount": restarts}]},
    }


def test_deletion_order_follows_the_controller_ranking() -> None:
    now = T0 + 1000
    pods = [
        _pod("ready-long", ready_at=T0 + 10),
        _pod("ready-recent", ready_at=T0 + 500),
        _pod("unready-old", created=T0),
        _pod("unready-new-restarting", created=T0, restarts=3),
        _pod("unready-newer", created=T0 + 100),
        _pod("pending", phase="Pending"),
        _pod("unscheduled", node=None, phase="Pending"),
    ]
    assert [p["metadata"]["name"] for p in deletion_order(pods, now)] == [
        "unscheduled",
        "pending",
        "unready-new-restarting",
        "unready-newer",
        "unready-old",
        "ready-recent",
        "ready-long",
    ]


def _rs(min_ready: int = 0, replicas: int = 3) -> dict[str, Any]:
    return {
        "metadata": {"name": "web-abc", "namespace": "ns", "uid": RS_UID, "generation": 4},
        "spec": {
            "replicas": replicas,
            "minReadySeconds": min_ready,
            "template": {
                "metadata": {"labels": {"app": "web", "pod-template-hash": "abc"}, "annotations": {"a": "b"}},
                "spec": {"containers": [{"name": "web"}]},
            },
        },
        "status": {"replicas": 0},
    }


def test_status_ignores_terminating_and_finished_pods_and_applies_min_ready_seconds() -> None:
    pods = [
        _pod("a", ready_at=T0),
        _pod("b", ready_at=T0 + 55),
        _pod("c"),
        _pod("d", ready_at=T0, deleting=True),
        _pod("e", phase="Succeeded"),
    ]
    assert [is_active(p) for p in pods] == [True, True, True, False, False]
    status = replicaset_status(_rs(min_ready=10), pods, T0 + 60)
    assert status == {
        "replicas": 3,
        "fullyLabeledReplicas": 0,  # the test Pods lack the pod-template-hash label
        "readyReplicas": 2,
        "availableReplicas": 1,  # b is Ready for 5 s only
        "observedGeneration": 4,
    }


def test_pod_from_template_is_owned_and_generate_named() -> None:
    pod = pod_from_template(_rs())
    assert pod["metadata"] == {
        "generateName": "web-abc-",
        "namespace": "ns",
        "labels": {"app": "web", "pod-template-hash": "abc"},
        "annotations": {"a": "b"},
        "ownerReferences": [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "web-abc",
                "uid": RS_UID,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }
    assert pod["spec"] == {"containers": [{"name": "web"}]}
