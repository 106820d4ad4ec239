"""Pure rules the object store applies to every update: what a PUT or a Scale write may send, Pod
binding, subresource isolation, immutable metadata, generation, preconditions, the Pod grace period and
the request URI recorded for in-process writes.

Called only by ``store.py`` (under its lock); kept apart so the store module holds the mechanics
(locking, resourceVersions, history, callbacks) and this one the Kubernetes rules.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime
from typing import Any

from emulators.cluster.errors import bad_request, conflict, invalid, not_found
from emulators.cluster.objects import check_pod_spec_update, prepare_for_update, spec_part
from emulators.cluster.resources import ResourceType
from emulators.cluster.simclock import format_datetime

Obj = dict[str, Any]
_IMMUTABLE_META = ("name", "namespace", "uid", "creationTimestamp", "generation", "resourceVersion")


def check_preconditions(rtype: ResourceType, name: str, current: Obj, meta: Obj) -> None:
    """A patch's metadata.resourceVersion is optimistic concurrency (409, checked first); its metadata.uid
    would change an immutable field (422), which is how the real server answers a kubelet-style UID
    "precondition" in a pods/status patch."""
    rv = meta.get("resourceVersion")
    if rv and rv != current["metadata"]["resourceVersion"]:
        raise conflict(rtype.plural, rtype.group, name)
    uid, stored_uid = meta.get("uid"), current["metadata"].get("uid")
    if uid and uid != stored_uid:
        raise invalid(
            rtype.kind,
            rtype.group,
            name,
            "metadata.uid",
            cause_reason="FieldValueInvalid",
            detail=f'Invalid value: "{uid}": field is immutable',
        )


def check_identity(rtype: ResourceType, ns: str, name: str, obj: Obj) -> None:
    meta = obj.get("metadata") or {}
    if meta.get("name") and meta["name"] != name:
        raise bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL ({name})")
    if rtype.namespaced and meta.get("namespace") and meta["namespace"] != ns:
        raise bad_request("the namespace of the provided object does not match the namespace sent on the request")


def check_replace(rtype: ResourceType, ns: str, name: str, obj: Any, current: Obj) -> Obj:
    """Validate a PUT body against the stored object; return a copy of it to merge."""
    if not isinstance(obj, dict):
        raise bad_request("the body of an update must be a JSON object")
    check_identity(rtype, ns, name, obj)
    sent_rv = (obj.get("metadata") or {}).get("resourceVersion")
    if sent_rv and sent_rv != current["metadata"]["resourceVersion"]:
        raise conflict(rtype.plural, rtype.group, name)
    if not sent_rv and rtype.custom:
        raise invalid(
            rtype.kind,
            rtype.group,
            name,
            "metadata.resourceVersion",
            cause_reason="FieldValueInvalid",
            detail="Invalid value: 0x0: must be specified for an update",
        )
    sent_uid = (obj.get("metadata") or {}).get("uid")
    if sent_uid and sent_uid != current["metadata"]["uid"]:
        raise invalid(
            rtype.kind,
            rtype.group,
            name,
            "metadata.uid",
            cause_reason="FieldValueInvalid",
            detail=f'Invalid value: "{sent_uid}": field is immutable',
        )
    return copy.deepcopy(obj)


def scale_replicas(name: str, scale: Obj) -> int:
    """The replica count a Scale write asks for; 422 unless it is a non-negative integer."""
    replicas = (scale.get("spec") or {}).get("replicas", 0)
    if not isinstance(replicas, int) or replicas < 0:
        raise invalid(
            "Scale",
            "autoscaling",
            name,
            "spec.replicas",
            cause_reason="FieldValueInvalid",
            detail=f"Invalid value: {replicas}: must be greater than or equal to 0",
        )
    return replicas


def binding(namespace: str, name: str, node_name: str) -> Obj:
    """The ``v1`` Binding a ``pods/{name}/binding`` create sends (what the audit log records)."""
    return {
        "kind": "Binding",
        "apiVersion": "v1",
        "metadata": {"name": name, "namespace": namespace},
        "target": {"kind": "Node", "name": node_name},
    }


def assign_node(current: Obj, name: str, node_name: str, now: Callable[[], datetime]) -> Obj:
    """Bind an unassigned Pod to ``node_name`` and mark it scheduled; 409 if it already has a node."""
    assigned = current["spec"].get("nodeName")
    if assigned:
        raise conflict("pods", "", name, f'pod {name} is already assigned to node "{assigned}"')
    current["spec"]["nodeName"] = node_name
    conditions = current.setdefault("status", {}).setdefault("conditions", [])
    conditions[:] = [c for c in conditions if c.get("type") != "PodScheduled"]
    conditions.append(
        {
            "type": "PodScheduled",
            "status": "True",
            "lastProbeTime": None,
            "lastTransitionTime": format_datetime(now()),
        }
    )
    return current


def merge_update(
    rtype: ResourceType, current: Obj, proposed: Obj, subresource: str | None, enforce_pod_spec: bool
) -> Obj:
    if not isinstance(proposed.get("metadata", {}), dict):
        raise bad_request("metadata must be a JSON object")
    if subresource in ("status", "binding"):
        merged = copy.deepcopy(current)
        if subresource == "status":
            merged["status"] = copy.deepcopy(proposed.get("status", {}))
        else:
            merged = copy.deepcopy(proposed)
        if rtype.plural == "pods":
            # podStatusStrategy keeps metadata changes except these (and resets spec).
            new_meta = copy.deepcopy(proposed.get("metadata") or {})
            for kept in ("ownerReferences", "deletionTimestamp", "deletionGracePeriodSeconds"):
                new_meta.pop(kept, None)
                if kept in current["metadata"]:
                    new_meta[kept] = current["metadata"][kept]
            merged["metadata"] = new_meta
            if subresource == "status":
                merged["spec"] = copy.deepcopy(current["spec"])
    elif subresource is not None:
        raise not_found(rtype.plural, rtype.group, current["metadata"]["name"])
    else:
        merged = copy.deepcopy(proposed)
        if rtype.status_subresource:
            if "status" in current:
                merged["status"] = copy.deepcopy(current["status"])
            else:
                merged.pop("status", None)
        if rtype.plural == "pods" and enforce_pod_spec:
            check_pod_spec_update(current, merged)
    merged.setdefault("metadata", {})
    for key in _IMMUTABLE_META:
        if key in current["metadata"]:
            merged["metadata"][key] = current["metadata"][key]
    if subresource is None:
        for key in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            merged["metadata"].pop(key, None)
            if key in current["metadata"]:
                merged["metadata"][key] = current["metadata"][key]
    merged["kind"], merged["apiVersion"] = rtype.kind, rtype.api_version
    prepare_for_update(rtype, current, merged)
    if rtype.tracks_generation and spec_part(rtype, merged) != spec_part(rtype, current):
        merged["metadata"]["generation"] = current["metadata"].get("generation", 1) + 1
    return merged


def grace_period(rtype: ResourceType, current: Obj, requested: int | None) -> int:
    if not rtype.graceful_delete:
        return 0
    spec, status = current.get("spec") or {}, current.get("status") or {}
    if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
        return 0  # never scheduled or nothing running: the real registry deletes at once
    if requested is not None:
        return max(requested, 0)
    existing = current["metadata"].get("deletionGracePeriodSeconds")
    if existing is not None:
        return int(existing)
    return int(spec.get("terminationGracePeriodSeconds", 30))


def request_uri(rtype: ResourceType, ns: str, name: str, subresource: str | None, verb: str) -> str:
    path = "/api/v1" if not rtype.group else f"/apis/{rtype.group}/{rtype.version}"
    if ns:
        path += f"/namespaces/{ns}"
    path += f"/{rtype.plural}"
    if name and verb != "create":
        path += f"/{name}"
    if subresource:
        path += f"/{name}/{subresource}" if verb == "create" else f"/{subresource}"
    return path
