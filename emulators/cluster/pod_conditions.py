"""The kubelet's Pod condition rules, as pure functions.

`kubelet.py` calls `kubelet_conditions` on every sync of a Pod to compute the kubelet-owned
conditions (`PodScheduled`, `PodReadyToStartContainers`, `Initialized`, `ContainersReady`, `Ready`)
from the Pod's spec, its container statuses and the conditions currently stored, then
`merge_conditions` to write them back without touching any foreign condition (a readiness gate set
by another writer) and moving `lastTransitionTime` only when a condition's status changes. The
controllers use `pod_is_ready` / `pod_is_available` for counting (§3.4). Messages mirror the real
kubelet's Go formatting (`%s` of a string slice prints `[a b]`, `%q` quotes).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from emulators.cluster.simclock import format_time, parse_time

KUBELET_OWNED = ("PodScheduled", "PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready")

Condition = dict[str, Any]


def _go_list(names: Sequence[str]) -> str:
    return "[" + " ".join(names) + "]"


def _status_by_name(statuses: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {str(status.get("name")): status for status in statuses}


def containers_ready_condition(
    spec: Mapping[str, Any], container_statuses: Sequence[Mapping[str, Any]] | None, phase: str
) -> Condition:
    """`GenerateContainersReadyCondition`: regular and restartable init containers must all be ready."""
    if container_statuses is None:
        return {"type": "ContainersReady", "status": "False", "reason": "UnknownContainerStatuses"}
    by_name = _status_by_name(container_statuses)
    unknown: list[str] = []
    unready: list[str] = []
    # Sidecars (init containers with restartPolicy Always) count like regular containers.
    watched = [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    watched += list(spec.get("containers") or [])
    for container in watched:
        status = by_name.get(str(container.get("name")))
        if status is None:
            unknown.append(str(container.get("name")))
        elif not status.get("ready"):
            unready.append(str(container.get("name")))
    if (phase == "Succeeded" and not unknown) or phase == "Failed":
        reason = "PodCompleted" if phase == "Succeeded" else "PodFailed"
        return {"type": "ContainersReady", "status": "False", "reason": reason}
    messages = []
    if unknown:
        messages.append(f"containers with unknown status: {_go_list(unknown)}")
    if unready:
        messages.append(f"containers with unready status: {_go_list(unready)}")
    if messages:
        return {
            "type": "ContainersReady",
            "status": "False",
            "reason": "ContainersNotReady",
            "message": ", ".join(messages),
        }
    return {"type": "ContainersReady", "status": "True"}


def ready_condition(
    spec: Mapping[str, Any],
    conditions: Sequence[Mapping[str, Any]],
    container_statuses: Sequence[Mapping[str, Any]] | None,
    phase: str,
) -> Condition:
    """`GeneratePodReadyCondition`: ContainersReady AND every readiness gate's condition is "True"."""
    containers = containers_ready_condition(spec, container_statuses, phase)
    if containers["status"] != "True":
        return {**containers, "type": "Ready"}
    by_type = {str(c.get("type")): c for c in conditions}
    messages = []
    for gate in spec.get("readinessGates") or []:
        gate_type = str(gate.get("conditionType"))
        found = by_type.get(gate_type)
        if found is None:
            messages.append(f"corresponding condition of pod readiness gate {json.dumps(gate_type)} does not exist.")
        elif found.get("status") != "True":
            messages.append(
                f'the status of pod readiness gate {json.dumps(gate_type)} is not "True", but {found.get("status")}'
            )
    if messages:
        return {
            "type": "Ready",
            "status": "False",
            "reason": "ReadinessGatesNotReady",
            "message": ", ".join(messages),
        }
    return {"type": "Ready", "status": "True"}


def kubelet_conditions(
    spec: Mapping[str, Any],
    conditions: Sequence[Mapping[str, Any]],
    container_statuses: Sequence[Mapping[str, Any]] | None,
    phase: str,
    *,
    sandbox_ready: bool,
) -> list[Condition]:
    """Every kubelet-owned condition for a scheduled Pod, without timestamps."""
    ready_to_start = "True" if sandbox_ready else "False"
    return [
        {"type": "PodReadyToStartContainers", "status": ready_to_start},
        {"type": "Initialized", "status": "True"},
        ready_condition(spec, conditions, container_statuses, phase),
        containers_ready_condition(spec, container_statuses, phase),
        {"type": "PodScheduled", "status": "True"},
    ]


def merge_conditions(
    existing: Sequence[Mapping[str, Any]], owned: Sequence[Mapping[str, Any]], now: float
) -> list[Condition]:
    """Replace kubelet-owned conditions in place, keep all others; move lastTransitionTime only on flips."""
    fresh = {str(c["type"]): c for c in owned}
    merged: list[Condition] = []
    for current in existing:
        kind = str(current.get("type"))
        if kind not in fresh:
            merged.append(dict(current))
            continue
        merged.append(_stamped(fresh.pop(kind), current, now))
    merged.extend(_stamped(condition, None, now) for condition in fresh.values())
    return merged


def _stamped(condition: Mapping[str, Any], previous: Mapping[str, Any] | None, now: float) -> Condition:
    stamped: Condition = {"type": condition["type"], "status": condition["status"], "lastProbeTime": None}
    if previous is not None and previous.get("status") == condition["status"] and previous.get("lastTransitionTime"):
        stamped["lastTransitionTime"] = previous["lastTransitionTime"]
    else:
        stamped["lastTransitionTime"] = format_time(now)
    for key in ("reason", "message"):
        if condition.get(key):
            stamped[key] = condition[key]
    return stamped


def find_condition(pod: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return None


def pod_is_ready(pod: Mapping[str, Any]) -> bool:
    ready = find_condition(pod, "Ready")
    return ready is not None and ready.get("status") == "True"


def ready_since(pod: Mapping[str, Any]) -> float | None:
    """When the Pod's Ready condition last turned True, or None if it is not Ready."""
    ready = find_condition(pod, "Ready")
    if ready is None or ready.get("status") != "True":
        return None
    return parse_time(ready.get("lastTransitionTime"))


def pod_is_available(pod: Mapping[str, Any], min_ready_seconds: int, now: float) -> bool:
    """`IsPodAvailable`: Ready, and Ready for longer than minReadySeconds (clock starts at the Ready flip)."""
    since = ready_since(pod)
    if since is None:
        return False
    return min_ready_seconds == 0 or since + min_ready_seconds < now


def seconds_until_available(pod: Mapping[str, Any], min_ready_seconds: int, now: float) -> float | None:
    """How long until a Ready Pod becomes available (for a precise requeue); None if not applicable."""
    since = ready_since(pod)
    if since is None or min_ready_seconds == 0:
        return None
    remaining = since + min_ready_seconds - now
    return remaining if remaining >= 0 else None
