"""The Deployment controller's rolling-update arithmetic and status rules, as pure functions.

`deployment.py` calls these on every sync; unit tests replay the reference's worked example with them
(from upstream `rolling.go`, `sync.go`, `progress.go` and
`deployment_util.go`). Inputs are plain numbers and `RsCounts` views of ReplicaSets, outputs are the
new `spec.replicas` per ReplicaSet or a new Deployment `status`, so every rule is checked without
threads, stores or clocks.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from emulators.cluster.simclock import format_time, parse_time

HASH_LABEL = "pod-template-hash"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


@dataclass(frozen=True)
class RsCounts:
    """What the rolling-update rules need from a ReplicaSet."""

    name: str
    replicas: int  # spec.replicas
    available: int = 0  # status.availableReplicas
    created: float = 0.0  # creationTimestamp, for "oldest first"


def scaled_value(value: int | str | None, total: int, *, round_up: bool) -> int:
    """`GetScaledValueFromIntOrPercent`: an int as is, "N%" of total rounded up or down."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if not text.endswith("%"):
        raise ValueError(f"invalid value for IntOrString: {value!r} (an integer or a percentage like '25%')")
    fraction = int(text[:-1]) * total / 100
    return math.ceil(fraction) if round_up else math.floor(fraction)


def resolve_fenceposts(max_surge: int | str | None, max_unavailable: int | str | None, desired: int) -> tuple[int, int]:
    """`ResolveFenceposts`: surge rounds up, unavailable rounds down; both 0 -> unavailable 1."""
    surge = scaled_value(max_surge, desired, round_up=True)
    unavailable = scaled_value(max_unavailable, desired, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_unavailable(max_surge: int | str | None, max_unavail: int | str | None, desired: int) -> int:
    """`MaxUnavailable(deployment)`: the resolved value, capped at the replica count (0 when R = 0)."""
    if desired == 0:
        return 0
    return min(resolve_fenceposts(max_surge, max_unavail, desired)[1], desired)


def new_rs_target(desired: int, surge: int, all_replicas: int, new_replicas: int) -> int:
    """`reconcileNewReplicaSet` + `NewRSNewReplicas`: the new RS's replicas after this round's scale-up."""
    if new_replicas > desired:
        return desired
    max_total = desired + surge
    if new_replicas == desired or all_replicas >= max_total:
        return new_replicas
    return new_replicas + min(max_total - all_replicas, desired - new_replicas)


def scale_down_old(desired: int, max_unavail: int, new: RsCounts, olds: Sequence[RsCounts]) -> dict[str, int]:
    """`reconcileOldReplicaSets`: new spec.replicas for the old RSs that shrink this round."""
    if sum(rs.replicas for rs in olds) == 0:
        return {}
    all_replicas = new.replicas + sum(rs.replicas for rs in olds)
    min_available = desired - max_unavail
    new_unavailable = new.replicas - new.available
    max_scaled_down = all_replicas - min_available - new_unavailable
    if max_scaled_down <= 0:
        return {}
    oldest_first = sorted(olds, key=lambda rs: (rs.created, rs.name))
    targets = {rs.name: rs.replicas for rs in oldest_first}
    # a. remove unhealthy (unavailable) old replicas first: they serve nothing.
    cleaned = 0
    for rs in oldest_first:
        if cleaned >= max_scaled_down:
            break
        if rs.replicas in (0, rs.available):
            continue
        step = min(max_scaled_down - cleaned, rs.replicas - rs.available)
        targets[rs.name] -= step
        cleaned += step
    # b. then scale down available old replicas while availability stays above the minimum.
    available = new.available + sum(rs.available for rs in olds)
    if available > min_available:
        budget = available - min_available
        for rs in oldest_first:
            if budget <= 0:
                break
            if targets[rs.name] == 0:
                continue
            step = min(targets[rs.name], budget)
            targets[rs.name] -= step
            budget -= step
    return {name: replicas for name, replicas in targets.items() if replicas != _replicas(olds, name)}


def _replicas(items: Sequence[RsCounts], name: str) -> int:
    return next(rs.replicas for rs in items if rs.name == name)


def rolling_update_step(
    desired: int, max_surge: int | str | None, max_unavail: int | str | None, new: RsCounts, olds: Sequence[RsCounts]
) -> dict[str, int]:
    """One sync of `rolloutRolling`: scale the new RS up if allowed, else the old RSs down."""
    surge, _ = resolve_fenceposts(max_surge, max_unavail, desired)
    all_replicas = new.replicas + sum(rs.replicas for rs in olds)
    target = new_rs_target(desired, surge, all_replicas, new.replicas)
    if target != new.replicas:
        return {new.name: target}
    return scale_down_old(desired, max_unavailable(max_surge, max_unavail, desired), new, olds)


# ---------------------------------------------------------------------------------------------- identity


def template_without_hash(template: Mapping[str, Any]) -> dict[str, Any]:
    stripped = copy.deepcopy(dict(template))
    labels = (stripped.get("metadata") or {}).get("labels")
    if labels:
        labels.pop(HASH_LABEL, None)
    return stripped


def pod_template_hash(template: Mapping[str, Any], collision_count: int = 0) -> str:
    """FNV-32a over the template (canonical JSON here; Go hashes its struct dump) + collisionCount,
    encoded like `rand.SafeEncodeString(fmt.Sprint(hash))`."""
    data = json.dumps(template_without_hash(template), sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        data += str(collision_count).encode()
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(_SAFE_ALPHABET[ord(char) % len(_SAFE_ALPHABET)] for char in str(value))


def revision_of(obj: Mapping[str, Any]) -> int:
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION_ANNOTATION, "0")
    try:
        return int(value)
    except ValueError:
        return 0


def replica_sets_to_clean_up(olds: Sequence[Mapping[str, Any]], history_limit: int) -> list[str]:
    """`cleanupDeployment`: names of the oldest idle old RSs beyond revisionHistoryLimit."""
    alive = [rs for rs in olds if not rs["metadata"].get("deletionTimestamp")]
    excess = len(alive) - history_limit
    if excess <= 0:
        return []
    doomed = []
    for rs in sorted(alive, key=revision_of)[:excess]:
        spec, status = rs.get("spec") or {}, rs.get("status") or {}
        idle = int(status.get("replicas", 0)) == 0 and int(spec.get("replicas", 0)) == 0
        observed = int(status.get("observedGeneration", 0)) >= int(rs["metadata"].get("generation", 1))
        if idle and observed:
            doomed.append(rs["metadata"]["name"])
    return doomed


# ---------------------------------------------------------------------------------------------- status


def _condition(kind: str, status: str, reason: str, message: str, now: float) -> dict[str, Any]:
    stamp = format_time(now)
    return {
        "type": kind,
        "status": status,
        "lastUpdateTime": stamp,
        "lastTransitionTime": stamp,
        "reason": reason,
        "message": message,
    }


def get_condition(status: Mapping[str, Any], kind: str) -> dict[str, Any] | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return None


def set_condition(status: dict[str, Any], condition: dict[str, Any]) -> None:
    """`SetDeploymentCondition`: no-op for same status+reason; keep lastTransitionTime for same status."""
    current = get_condition(status, condition["type"])
    if (
        current is not None
        and current["status"] == condition["status"]
        and current.get("reason") == condition["reason"]
    ):
        return
    if current is not None and current["status"] == condition["status"]:
        condition = {**condition, "lastTransitionTime": current.get("lastTransitionTime")}
    others = [c for c in status.get("conditions") or [] if c.get("type") != condition["type"]]
    status["conditions"] = [*others, condition]


def is_complete(desired: int, generation: int, status: Mapping[str, Any]) -> bool:
    """`DeploymentComplete`: what `kubectl rollout status` waits for."""
    counts = [int(status.get(field, 0)) for field in ("updatedReplicas", "replicas", "availableReplicas")]
    return counts == [desired] * 3 and int(status.get("observedGeneration", 0)) >= generation


def _progressing(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """`DeploymentProgressing`: more updated/ready/available replicas, or fewer old ones."""

    def count(status: Mapping[str, Any], field: str) -> int:
        return int(status.get(field, 0))

    old_olds = count(old, "replicas") - count(old, "updatedReplicas")
    new_olds = count(new, "replicas") - count(new, "updatedReplicas")
    return (
        count(new, "updatedReplicas") > count(old, "updatedReplicas")
        or new_olds < old_olds
        or count(new, "readyReplicas") > count(old, "readyReplicas")
        or count(new, "availableReplicas") > count(old, "availableReplicas")
    )


def deadline_exceeded(status: Mapping[str, Any], deadline_s: int | None, now: float) -> bool:
    """`DeploymentTimedOut`: no progress since Progressing.lastUpdateTime + progressDeadlineSeconds."""
    condition = get_condition(status, "Progressing")
    if deadline_s is None or condition is None or condition.get("reason") == "NewReplicaSetAvailable":
        return False
    if condition.get("reason") == "ProgressDeadlineExceeded":
        return True
    since = parse_time(condition.get("lastUpdateTime"))
    return since is not None and since + deadline_s < now


def rollout_status(
    deployment: Mapping[str, Any], new_rs: Mapping[str, Any], all_rss: Sequence[Mapping[str, Any]], now: float
) -> dict[str, Any]:
    """`calculateStatus` + `syncRolloutStatus`: the Deployment status after this sync."""
    spec, old_status = deployment.get("spec") or {}, dict(deployment.get("status") or {})
    desired = int(spec.get("replicas", 1))
    rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
    generation = int(deployment["metadata"].get("generation", 1))

    def total(field: str, source: str, items: Sequence[Mapping[str, Any]]) -> int:
        return sum(int((rs.get(source) or {}).get(field, 0)) for rs in items)

    available = total("availableReplicas", "status", all_rss)
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "replicas": total("replicas", "status", all_rss),
        "updatedReplicas": total("replicas", "status", [new_rs]),
        "readyReplicas": total("readyReplicas", "status", all_rss),
        "availableReplicas": available,
        "unavailableReplicas": max(0, total("replicas", "spec", all_rss) - available),
        "conditions": [dict(c) for c in old_status.get("conditions") or []],
    }
    if "collisionCount" in old_status:
        status["collisionCount"] = old_status["collisionCount"]
    if available >= desired - max_unavailable(rolling.get("maxSurge"), rolling.get("maxUnavailable"), desired):
        set_condition(
            status,
            _condition("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.", now),
        )
    else:
        set_condition(
            status,
            _condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
                now,
            ),
        )
    deadline = spec.get("progressDeadlineSeconds")
    current = get_condition(old_status, "Progressing")
    if deadline is None:
        status["conditions"] = [c for c in status["conditions"] if c.get("type") != "Progressing"]
        return status
    settled = (
        status["replicas"] == status["updatedReplicas"]
        and current is not None
        and current.get("reason") == "NewReplicaSetAvailable"
    )
    name = new_rs["metadata"]["name"]
    if settled:
        return status
    if is_complete(desired, generation, status):
        set_condition(
            status,
            _condition(
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{name}" has successfully progressed.',
                now,
            ),
        )
    elif _progressing(old_status, status):
        condition = _condition("Progressing", "True", "ReplicaSetUpdated", f'ReplicaSet "{name}" is progressing.', now)
        if current is not None and current.get("status") == "True":
            condition["lastTransitionTime"] = current.get("lastTransitionTime")
        # Unlike set_condition, any progress refreshes lastUpdateTime even with an unchanged reason.
        status["conditions"] = [*(c for c in status["conditions"] if c.get("type") != "Progressing"), condition]
    elif deadline_exceeded(status, int(deadline), now):
        set_condition(
            status,
            _condition(
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{name}" has timed out progressing.',
                now,
            ),
        )
    return status


def progressing_condition_for_new_rs(name: str, created: bool, now: float) -> dict[str, Any]:
    """The Progressing condition written when the new RS is created or first found."""
    if created:
        return _condition("Progressing", "True", "NewReplicaSetCreated", f'Created new replica set "{name}"', now)
    return _condition("Progressing", "True", "FoundNewReplicaSet", f'Found new replica set "{name}"', now)
