"""Use limits of direct access (architecture rule 9).

Pure checks called by the service step (cluster version) and the bind step (per-Pod limits). Each
problem is a message written for the user: the bind step turns it into a Warning Event and the flip
step into the gate condition message, so a limit is never hit silently. The backend quota lives in
`backends.plan_registration` because it depends on the CLB's current targets.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from shared.domain.models import (
    CLUSTER_CONFIG_NAME,
    CLUSTER_CONFIG_NAMESPACE,
    DIRECT_ENI_RESOURCE,
    ENI_IP_RESOURCE,
    GLOBAL_ROUTE_KEY,
    VPC_CNI_NETWORKS_ANNOTATION,
    NetworkMode,
    PodInfo,
)

MIN_KUBERNETES_VERSION = (1, 12)

# The longest pause between two CLB API attempts of one write: the retry backoff's cap (throttling,
# instance lock) and, shorter, the DescribeTaskStatus poll interval's cap. A writer renews its lease at
# those attempts while it waits for the async task, so its lease must outlast a few such pauses.
CLB_RETRY_BACKOFF_CAP_S = 5.0
CLB_TASK_POLL_MAX_S = 3.0
MIN_LEASE_TTL_S = 3 * max(CLB_RETRY_BACKOFF_CAP_S, CLB_TASK_POLL_MAX_S)

# A fenced CLB write sends a request only with this many request timeouts (`clb_request_timeout_s`) left
# on its lease, renewing it first when less is left. The fence is checked before a request, never during
# it: one timeout covers the request itself (the SDK abandons it then, and the call is retried under the
# fence), the other is margin for what the writer cannot see: a request the CLB received just before we
# gave up and applies a little later, and the clock skew between writers. Settings refuse a lease TTL that
# is not longer than this many timeouts.
REQUEST_LEASE_FACTOR = 2

# SCF's async Invoke accepts at most 128 KB of event; the router cuts StepRequests to leave headroom for
# the invoker's envelope, and every invoker refuses an event over the limit itself.
SCF_ASYNC_PAYLOAD_LIMIT_BYTES = 128 * 1024
STEP_REQUEST_MAX_BYTES = SCF_ASYNC_PAYLOAD_LIMIT_BYTES - 8 * 1024


# The TKE networks that give a Pod an ENI address (shared-ENI multi-IP, and one ENI per Pod).
ENI_NETWORKS = frozenset({"tke-route-eni", "tke-direct-eni"})


def requested_networks(value: str) -> list[str]:
    """The network names in a `tke.cloud.tencent.com/networks` value.

    Accepts what multi-network annotations carry: a comma-separated list (`tke-route-eni`,
    `tke-bridge,tke-route-eni`, `ns/name@eth1`) or a JSON list of names or `{"name": ...}` objects.
    """
    text = value.strip()
    entries: list[object]
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = []
        entries = list(parsed) if isinstance(parsed, list) else []
    else:
        entries = [part for part in text.split(",") if part.strip()]
    names = []
    for entry in entries:
        name = entry.get("name") if isinstance(entry, dict) else entry
        if isinstance(name, str) and name.strip():
            names.append(name.strip().rsplit("/", 1)[-1].split("@", 1)[0])
    return names


def network_mode(pod: PodInfo) -> NetworkMode:
    """What network the Pod's address comes from, by what the networks annotation names.

    VPC-CNI when the annotation names an ENI network (`tke-route-eni`, `tke-direct-eni`); GlobalRouter
    when it names only others (e.g. `tke-bridge`, the node bridge of GlobalRouter mode), whatever the
    Pod requests; without the annotation, VPC-CNI when a container requests an ENI resource (`eni-ip`,
    `direct-eni`, which TKE's webhook adds in VPC-CNI clusters), else GlobalRouter.
    """
    if pod.host_network:
        return "host-network"
    networks = requested_networks(pod.annotations.get(VPC_CNI_NETWORKS_ANNOTATION, ""))
    if networks:
        return "vpc-cni" if any(name in ENI_NETWORKS for name in networks) else "global-router"
    if ENI_IP_RESOURCE in pod.resource_requests or DIRECT_ENI_RESOURCE in pod.resource_requests:
        return "vpc-cni"
    return "global-router"


def cluster_version_problem(version: tuple[int, int]) -> str | None:
    """Readiness gates need Kubernetes > 1.12; older clusters are refused."""
    if version < MIN_KUBERNETES_VERSION:
        return (
            f"Kubernetes {version[0]}.{version[1]} is too old for direct access: readiness gates need "
            f"{MIN_KUBERNETES_VERSION[0]}.{MIN_KUBERNETES_VERSION[1]} or newer; upgrade the cluster"
        )
    return None


def global_route_allowed(cluster_config: Mapping[str, str]) -> bool:
    return cluster_config.get(GLOBAL_ROUTE_KEY, "").strip().lower() == "true"


def _workload(pod: PodInfo) -> tuple[str, str]:
    if pod.owner_kind and pod.owner_name:
        return pod.owner_kind, pod.owner_name
    return "Pod", pod.name


def pod_limit_problems(
    pods: Iterable[PodInfo], *, cluster_config: Mapping[str, str], bound_uids: frozenset[str] = frozenset()
) -> dict[str, str]:
    """Pod UID -> the limit that forbids binding it.

    Pods already bound (`bound_uids`) are not refused for workload mixing: a limit must never unbind a
    serving Pod, only stop new ones. Mixing is judged per owner (ReplicaSet, StatefulSet, ...), so a
    rolling update that changes the network mode (a new ReplicaSet) is not a mix.
    """
    pods = [pod for pod in pods if pod.deletion_timestamp is None]
    problems: dict[str, str] = {}
    modes_by_workload: dict[tuple[str, str], set[NetworkMode]] = {}
    for pod in pods:
        modes_by_workload.setdefault(_workload(pod), set()).add(network_mode(pod))
    gr_allowed = global_route_allowed(cluster_config)
    for pod in pods:
        mode = network_mode(pod)
        kind, name = _workload(pod)
        if mode == "host-network":
            problems[pod.uid] = (
                f"Pod {pod.namespace}/{pod.name} uses hostNetwork, which direct access does not support; "
                "remove hostNetwork or drop the direct-access annotation"
            )
        elif {"vpc-cni", "global-router"} <= modes_by_workload[(kind, name)] and pod.uid not in bound_uids:
            problems[pod.uid] = (
                f"workload {kind}/{name} mixes VPC-CNI and GlobalRouter Pods; direct access needs one network "
                f"mode per workload (set {VPC_CNI_NETWORKS_ANNOTATION} or the {ENI_IP_RESOURCE} request on all "
                "of its Pods, or on none)"
            )
        elif mode == "global-router" and not gr_allowed:
            problems[pod.uid] = (
                f"Pod {pod.namespace}/{pod.name} runs in GlobalRouter mode but ConfigMap "
                f'{CLUSTER_CONFIG_NAMESPACE}/{CLUSTER_CONFIG_NAME} does not set {GLOBAL_ROUTE_KEY}: "true"; '
                "enable it or run the workload in VPC-CNI mode"
            )
    return problems
