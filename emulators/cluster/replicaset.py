"""The simulated ReplicaSet controller and its pure counting rules.

`ClusterSimulator` (`simulator.py`) runs one `ReplicaSetController`. Each sync of a ReplicaSet lists the
Pods it controls, creates Pods from its template (through the store's create, so mutating admission
webhooks see them, as they would see the real controller's) or deletes the surplus chosen by
`deletion_order`, and writes `status` through `replicasets/status`. Counting follows the real
controller: terminating and finished Pods are not counted; `readyReplicas` counts `Ready` (so a
readiness gate that stays False keeps a Pod out), `availableReplicas` adds `minReadySeconds`, and a
ReplicaSet with Ready-but-not-yet-available Pods is requeued for the moment they become available.
Deleting a ReplicaSet deletes its Pods through the store's owner-reference garbage collection.
The Deployment controller (`deployment.py`) reads the counters this controller writes.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from emulators.cluster.errors import ApiError
from emulators.cluster.pod_conditions import pod_is_available, pod_is_ready, ready_since, seconds_until_available
from emulators.cluster.selectors import match_label_selector_object
from emulators.cluster.simclock import SimClock, WallClock, parse_time
from emulators.cluster.workqueue import StoreController

if TYPE_CHECKING:
    from emulators.cluster.store import ObjectStore

log = logging.getLogger(__name__)

CONTROLLER_ACTOR = "system:serviceaccount:kube-system:replicaset-controller"
_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def controller_uid(obj: Mapping[str, Any]) -> str | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def controlled_by(obj: Mapping[str, Any], owner: Mapping[str, Any]) -> bool:
    return controller_uid(obj) == str(owner["metadata"].get("uid"))


def is_active(pod: Mapping[str, Any]) -> bool:
    """Counted by the controller: not finished and not being deleted."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp")


def _deletion_key(pod: Mapping[str, Any], now: float) -> tuple[Any, ...]:
    status = pod.get("status") or {}
    restarts = sum(int(c.get("restartCount", 0)) for c in status.get("containerStatuses") or [])
    since = ready_since(pod)
    created = parse_time(pod["metadata"].get("creationTimestamp")) or 0.0
    return (
        1 if (pod.get("spec") or {}).get("nodeName") else 0,  # unscheduled first
        _PHASE_RANK.get(str(status.get("phase")), 1),  # Pending < Unknown < Running
        1 if pod_is_ready(pod) else 0,  # not ready first
        -(since if since is not None else now),  # ready for a shorter time first
        -restarts,  # more restarts first
        -created,  # newer first
    )


def deletion_order(pods: Sequence[Mapping[str, Any]], now: float) -> list[Mapping[str, Any]]:
    """Pods sorted so that the first ones are the best to delete when scaling down (`ActivePods`)."""
    return sorted(pods, key=lambda pod: _deletion_key(pod, now))


def replicaset_status(rs: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], now: float) -> dict[str, Any]:
    """`calculateStatus` of the ReplicaSet controller over its active Pods."""
    spec = rs.get("spec") or {}
    min_ready = int(spec.get("minReadySeconds", 0))
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    active = [pod for pod in pods if is_active(pod)]
    status = dict(rs.get("status") or {})
    status.update(
        {
            "replicas": len(active),
            "fullyLabeledReplicas": sum(
                1
                for pod in active
                if all((pod["metadata"].get("labels") or {}).get(k) == v for k, v in template_labels.items())
            ),
            "readyReplicas": sum(1 for pod in active if pod_is_ready(pod)),
            "availableReplicas": sum(1 for pod in active if pod_is_available(pod, min_ready, now)),
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
    )
    return status


def pod_from_template(rs: Mapping[str, Any]) -> dict[str, Any]:
    """A Pod for `rs`: template labels/annotations/spec, a controller ownerReference, `generateName`."""
    meta = rs["metadata"]
    template = copy.deepcopy((rs.get("spec") or {}).get("template") or {})
    template_meta = template.get("metadata") or {}
    pod_meta: dict[str, Any] = {
        "generateName": f"{meta['name']}-",
        "namespace": meta["namespace"],
        "labels": dict(template_meta.get("labels") or {}),
        "ownerReferences": [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": meta["name"],
                "uid": meta["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }
    if template_meta.get("annotations"):
        pod_meta["annotations"] = dict(template_meta["annotations"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": template.get("spec") or {}}


class ReplicaSetController(StoreController):
    def __init__(self, store: ObjectStore, *, clock: SimClock | None = None, resync_period_s: float = 5.0) -> None:
        super().__init__(store, "replicaset", resync_period_s=resync_period_s)
        self._clock = clock or WallClock()

    def _on_event(self, kind: str, resource: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        if resource == "replicasets" and kind != "DELETED":
            self._queue.add(f"{meta.get('namespace')}/{meta.get('name')}")
        elif resource == "pods":
            for ref in meta.get("ownerReferences") or []:
                if ref.get("controller") and ref.get("kind") == "ReplicaSet":
                    self._queue.add(f"{meta.get('namespace')}/{ref.get('name')}")

    def _all_keys(self) -> list[str]:
        items, _ = self._store.list("replicasets", read_only=True)
        return [f"{rs['metadata']['namespace']}/{rs['metadata']['name']}" for rs in items]

    def _sync(self, key: str) -> None:
        namespace, name = key.split("/", 1)
        rs = self._store.get("replicasets", namespace, name)
        if rs is None or rs["metadata"].get("deletionTimestamp"):
            return
        selector = (rs.get("spec") or {}).get("selector")
        items, _ = self._store.list("pods", namespace, read_only=True)
        pods = [
            pod
            for pod in items
            if controlled_by(pod, rs) and match_label_selector_object(selector, pod["metadata"].get("labels"))
        ]
        active = [pod for pod in pods if is_active(pod)]
        diff = len(active) - int((rs.get("spec") or {}).get("replicas", 1))
        now = self._clock.now()
        if diff < 0:
            for _ in range(-diff):
                self._store.create("pods", namespace, pod_from_template(rs), actor=CONTROLLER_ACTOR)
        elif diff > 0:
            for pod in deletion_order(active, now)[:diff]:
                self._delete_pod(namespace, pod["metadata"]["name"])
        self._write_status(rs, pods, now)
        min_ready = int((rs.get("spec") or {}).get("minReadySeconds", 0))
        waits = [w for pod in active if (w := seconds_until_available(pod, min_ready, now)) is not None]
        if waits:
            # Availability changes by time alone; come back just after the earliest Pod crosses the line.
            self._queue.add_after(key, min(waits) + 1.05)

    def _delete_pod(self, namespace: str, name: str) -> None:
        try:
            self._store.delete("pods", namespace, name, actor=CONTROLLER_ACTOR)
        except ApiError as exc:
            if exc.code != 404:
                raise

    def _write_status(self, rs: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], now: float) -> None:
        desired = replicaset_status(rs, pods, now)
        uid = rs["metadata"].get("uid")

        def update(current: dict[str, Any]) -> dict[str, Any] | None:
            if current["metadata"].get("uid") != uid or (current.get("status") or {}) == desired:
                return None
            updated = copy.deepcopy(current)
            updated["status"] = {**desired, "observedGeneration": current["metadata"].get("generation", 1)}
            return updated

        meta = rs["metadata"]
        try:
            self._store.mutate(
                "replicasets", meta["namespace"], meta["name"], update, subresource="status", actor=CONTROLLER_ACTOR
            )
        except ApiError as exc:
            if exc.code != 404:
                raise
