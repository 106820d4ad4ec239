"""How the object store deletes: graceful Pod deletion, finalizers, namespace cascade, garbage collection.

Called only by ``store.py``, always under its lock, over its tables (``plural -> (namespace, name) ->
object``) and through its ``commit`` (which bumps the resourceVersion and publishes the change). Kept
apart so the store holds the mechanics and this module the apiserver's deletion rules: an object with
finalizers, or a scheduled Pod with a grace period, is only marked terminating (``deletionTimestamp``)
and disappears once the last finalizer is removed (and, for a Pod, its grace period is set to 0); deleting
a namespace deletes everything in it; dependents whose every owner is gone are collected afterwards
(background propagation, outside the lock, by the store's ``delete``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from emulators.cluster import updates
from emulators.cluster.errors import not_found
from emulators.cluster.resources import RESOURCES, ResourceType
from emulators.cluster.simclock import format_datetime

Obj = dict[str, Any]
Tables = dict[str, dict[tuple[str, str], Obj]]
Commit = Callable[[str, ResourceType, Obj, "Obj | None"], Obj]

GC_ACTOR = "system:serviceaccount:kube-system:generic-garbage-collector"


def completes_deletion(rtype: ResourceType, meta: Obj) -> bool:
    """Whether an update leaves a terminating object nothing to wait for, so it is removed instead."""
    return bool(
        meta.get("deletionTimestamp")
        and not meta.get("finalizers")
        and (rtype.plural != "pods" or meta.get("deletionGracePeriodSeconds") == 0)
    )


def delete_locked(
    tables: Tables,
    rtype: ResourceType,
    ns: str,
    name: str,
    *,
    grace: int | None,
    preconditions: dict[str, str],
    commit: Commit,
    now: Callable[[], datetime],
    removed: list[Obj],
) -> Obj:
    """Delete at once or mark terminating; append what is gone for good to ``removed`` (for the GC)."""
    current = tables[rtype.plural].get((ns, name))
    if current is None:
        raise not_found(rtype.plural, rtype.group, name)
    updates.check_preconditions(rtype, name, current, preconditions)
    if rtype.plural == "namespaces":
        for plural, table in tables.items():
            for key in [k for k in table if k[0] == name]:
                commit("DELETED", RESOURCES[plural], copy.deepcopy(table[key]), table[key])
    grace = updates.grace_period(rtype, current, grace)
    meta = current["metadata"]
    if grace == 0 and not meta.get("finalizers"):
        result = commit("DELETED", rtype, copy.deepcopy(current), current)
        removed.append(result)
        return result
    if meta.get("deletionTimestamp") and meta.get("deletionGracePeriodSeconds", 0) <= grace:
        return copy.deepcopy(current)  # already terminating at least this fast
    updated = copy.deepcopy(current)
    updated["metadata"]["deletionTimestamp"] = format_datetime(now() + timedelta(seconds=grace))
    updated["metadata"]["deletionGracePeriodSeconds"] = grace
    return commit("MODIFIED", rtype, updated, current)


def orphaned_dependents(tables: Tables, owner: Obj) -> list[tuple[str, Obj]]:
    """Copies of the objects ``owner`` owned that have no live owner left, with their plurals."""
    owner_uid = owner["metadata"].get("uid")
    owner_ns = owner["metadata"].get("namespace", "")
    return [
        (plural, copy.deepcopy(obj))
        for plural, table in tables.items()
        for (ns, _), obj in table.items()
        if ns == owner_ns
        and any(ref.get("uid") == owner_uid for ref in obj["metadata"].get("ownerReferences") or [])
        and not _has_live_owner(tables, ns, obj)
    ]


def _has_live_owner(tables: Tables, ns: str, obj: Obj) -> bool:
    live_uids = {
        o["metadata"]["uid"] for table in tables.values() for (o_ns, _), o in table.items() if o_ns in (ns, "")
    }
    return any(ref.get("uid") in live_uids for ref in obj["metadata"].get("ownerReferences") or [])
