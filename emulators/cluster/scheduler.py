"""The simulated scheduler: binds every unscheduled Pod to the least-loaded simulated node.

`ClusterSimulator` (`simulator.py`) runs one `Scheduler` next to the kubelet. It watches Pods through
`ObjectStore.subscribe` and, for each Pod without `spec.nodeName` that is not being deleted and asks
for the default scheduler, picks a node with `choose_node` (a `kubernetes.io/hostname` nodeSelector
wins; otherwise fewest bound, non-terminal Pods, lowest index on ties, which spreads replicas round
robin) and binds it through the store's `pods/binding` as `system:kube-scheduler`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from emulators.cluster.errors import ApiError
from emulators.cluster.workqueue import StoreController

if TYPE_CHECKING:
    from emulators.cluster.store import ObjectStore

log = logging.getLogger(__name__)

SCHEDULER_ACTOR = "system:kube-scheduler"
HOSTNAME_LABEL = "kubernetes.io/hostname"


def default_node_names(count: int) -> list[str]:
    return [f"node-{index}" for index in range(1, count + 1)]


def choose_node(pod: Mapping[str, Any], nodes: Sequence[str], pods: Sequence[Mapping[str, Any]]) -> str | None:
    """The node for `pod`, or None when its nodeSelector names no simulated node (stays Pending)."""
    wanted = ((pod.get("spec") or {}).get("nodeSelector") or {}).get(HOSTNAME_LABEL)
    if wanted is not None:
        return wanted if wanted in nodes else None
    load = dict.fromkeys(nodes, 0)
    for other in pods:
        node = (other.get("spec") or {}).get("nodeName")
        phase = (other.get("status") or {}).get("phase")
        if node in load and phase not in ("Succeeded", "Failed"):
            load[node] += 1
    return min(nodes, key=lambda name: (load[name], nodes.index(name)))


def needs_scheduling(pod: Mapping[str, Any]) -> bool:
    spec = pod.get("spec") or {}
    return (
        not spec.get("nodeName")
        and not (pod.get("metadata") or {}).get("deletionTimestamp")
        and spec.get("schedulerName", "default-scheduler") == "default-scheduler"
    )


class Scheduler(StoreController):
    def __init__(self, store: ObjectStore, nodes: Sequence[str]) -> None:
        if not nodes:
            raise ValueError("the scheduler needs at least one node")
        super().__init__(store, "scheduler", resync_period_s=5.0)
        self._nodes = list(nodes)

    def _on_event(self, kind: str, resource: str, obj: dict[str, Any]) -> None:
        if resource == "pods" and kind != "DELETED" and needs_scheduling(obj):
            self._queue.add(f"{obj['metadata']['namespace']}/{obj['metadata']['name']}")

    def _all_keys(self) -> list[str]:
        pods, _ = self._store.list("pods", read_only=True)
        return [f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in pods if needs_scheduling(p)]

    def _sync(self, key: str) -> None:
        namespace, name = key.split("/", 1)
        pod = self._store.get("pods", namespace, name)
        if pod is None or not needs_scheduling(pod):
            return
        pods, _ = self._store.list("pods", read_only=True)
        node = choose_node(pod, self._nodes, pods)
        if node is None:
            log.warning("sim scheduler: pod %s selects no simulated node; it stays Pending", key)
            return
        try:
            self._store.bind(namespace, name, node, actor=SCHEDULER_ACTOR)
        except ApiError as exc:
            if exc.code not in (404, 409):  # gone, or bound meanwhile: nothing left to do
                raise
            return
        log.info("sim scheduler: bound %s to %s", key, node)
