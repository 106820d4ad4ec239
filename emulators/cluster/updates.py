"""Pure rules the object store applies to every update: subresource isolation, immutable metadata,
generation, preconditions, the Pod grace period and the request URI recorded for in-process writes.

Called only by ``store.py`` (under its lock); kept apart so the store module holds the mechanics
(locking, resourceVersions, history, callbacks) and this one the Kubernetes rules.
"""

from __future__ import annotations

import copy
from typing import Any

from emulators.cluster.errors import bad_request, conflict, not_found
from emulators.cluster.objects import check_pod_spec_update, prepare_for_update, spec_part
from emulators.cluster.resources import ResourceType

Obj = dict[str, Any]
_IMMUTABLE_META = ("name", "namespace", "uid", "creationTimestamp", "generation", "resourceVersion")


def check_preconditions(rtype: ResourceType, name: str, current: Obj, meta: Obj) -> None:
    uid, stored_uid = meta.get("uid"), current["metadata"].get("uid")
    if uid and uid != stored_uid:
        raise conflict(
            rtype.plural,
            rtype.group,
            name,
            f"Precondition failed: UID in precondition: {uid}, UID in object meta: {stored_uid}",
        )
    rv = meta.get("resourceVersion")
    if rv and rv != current["metadata"]["resourceVersion"]:
        raise conflict(rtype.plural, rtype.group, name)


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
