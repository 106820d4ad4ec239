"""Pure routing rules: `ObjectChange` -> dedupe/stale decisions -> StepRequests per CLB.

Called by `shared.router` (relay batches, raw EventLists, CLS records) and by `shared.reconcile` when it
replays a stored event; `shared.normalize` turns the wire events into `ObjectChange`s first. No I/O:
the router fetches the selector index and last-seen resourceVersions from the store and passes them
in. Events are hints: a change only says *what to look at*; the steps re-read live state, so planning
errs on the side of asking a step that may find nothing to do rather than missing one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.domain.errors import InvalidInput
from shared.domain.models import (
    LB_ID_ANNOTATION,
    ObjectKey,
    SelectorEntry,
    StepKind,
    StepRequest,
)
from shared.domain.ownership import owns_service

ChangeKind = Literal["Pod", "Service", "ClusterConfig", "TkeServiceConfig"]
ChangeAction = Literal["upsert", "delete", "resync"]

WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
# Subresources whose writes change what the steps look at; pods/binding, pods/eviction, logs etc. do not
# (an eviction is followed by a delete, which is what matters).
RELEVANT_SUBRESOURCES = {"pods": {"", "status"}, "services": {""}, "configmaps": {""}, "tkeserviceconfigs": {""}}
KIND_BY_RESOURCE: dict[str, ChangeKind] = {
    "pods": "Pod",
    "services": "Service",
    "configmaps": "ClusterConfig",
    "tkeserviceconfigs": "TkeServiceConfig",
}


class ObjectChange(BaseModel):
    """What one event says about one object, reduced to the facts planning needs (stored for replay)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str
    source: Literal["audit", "watch"]
    kind: ChangeKind
    action: ChangeAction
    namespace: str
    name: str
    uid: str = ""
    resource_version: str = ""
    verb: str = ""
    facts_known: bool = Field(default=False, description="the event carried the object (not Metadata level)")
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    deleting: bool = False
    # Pod facts
    pod_ip: str | None = None
    containers_ready: bool = False
    host_network: bool = False
    has_gate: bool = False
    gate_status: str | None = None
    # Service facts
    service_type: str = ""
    selector: dict[str, str] = Field(default_factory=dict)
    load_balancer_class: str | None = None

    @property
    def key(self) -> ObjectKey:
        return ObjectKey(namespace=self.namespace or "-", name=self.name or "-")

    @property
    def object_key(self) -> str:
        """Identity for last-seen resourceVersion bookkeeping."""
        return f"{self.kind}:{self.namespace}/{self.name}"

    @property
    def summary(self) -> str:
        via = f"{self.verb} " if self.verb else ""
        return f"{self.source} {via}{self.kind} {self.namespace}/{self.name} rv={self.resource_version or '?'}"

    @property
    def bind_eligible(self) -> bool:
        """Architecture rule 2: bind on an IP + ContainersReady + not terminating (never hostNetwork)."""
        return bool(self.pod_ip) and self.containers_ready and not self.deleting and not self.host_network

    @property
    def is_direct_access(self) -> bool:
        return (
            owns_service(
                service_type=self.service_type,
                annotations=self.annotations,
                load_balancer_class=self.load_balancer_class,
            )
            and not self.deleting
            and self.action != "delete"
        )


# ---------------------------------------------------------------------------------------------- stale


def is_stale(change: ObjectChange, live_rv: str | None) -> bool:
    """True when the live object (as a step last read it) is already at a newer version than the event.

    resourceVersions are opaque in Kubernetes but integers in practice (etcd revisions); when either is
    not an integer we cannot order them and keep the event (steps re-read state anyway). An event at the
    live version itself is kept: a step having read that version does not mean every step it needs ran.
    """
    if not live_rv or not change.resource_version:
        return False
    if not (change.resource_version.isdigit() and live_rv.isdigit()):
        return False
    return int(change.resource_version) < int(live_rv)


# ---------------------------------------------------------------------------------------------- plan


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """Service selector semantics: every pair must match; an empty selector selects nothing."""
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _request(step: StepKind, reason: str, *, lb_id: str | None = None, **keys: Any) -> StepRequest:
    return StepRequest(step=step, reason=reason, lb_id=lb_id, **keys)


def plan_change(change: ObjectChange, selectors: Sequence[SelectorEntry]) -> list[StepRequest]:
    """Which steps one change needs. `selectors` are the namespace's direct-access Services."""
    if change.kind in ("ClusterConfig", "TkeServiceConfig") or change.action == "resync":
        # Cluster switches and TkeServiceConfigs may affect any Service; a forced reconcile finds which.
        return [_request("reconcile", f"{change.kind} {change.namespace}/{change.name} changed")]
    if change.kind == "Service":
        lb_id = change.annotations.get(LB_ID_ANNOTATION) or None
        # The service step ensures (or tears down) the CLB and then asks bind/flip itself.
        return [_request("service", f"{change.summary}", lb_id=lb_id, services=[change.key])]
    if not change.facts_known:
        # Metadata-level audit: no labels to match; the reconcile replay of one Pod re-reads it.
        return [_request("reconcile", f"{change.summary} (no body)", pods=[change.key])]
    pod_keys: dict[str, Any] = {"pods": [change.key], "pod_uids": [change.uid] if change.uid else []}
    selecting = [s for s in selectors if selects(s.selector, change.labels)]
    if change.action == "delete" or change.deleting:
        return [_request("unbind", change.summary, **pod_keys)]
    if not selecting:
        if change.has_gate:
            # Was a direct-access Pod, no Service selects it now: drain it and release its gate (rule 8).
            return [_request("unbind", change.summary, **pod_keys), _request("flip", change.summary, **pod_keys)]
        return []
    requests: list[StepRequest] = []
    for entry in selecting:
        service = ObjectKey(namespace=entry.namespace, name=entry.service)
        if change.bind_eligible:
            requests.append(_request("bind", change.summary, lb_id=entry.lb_id, services=[service], **pod_keys))
        elif change.gate_status is not None and not change.host_network:
            # It was bound once (flip has set its gate) and is now ineligible: the unbind step decides.
            requests.append(_request("unbind", change.summary, lb_id=entry.lb_id, services=[service], **pod_keys))
    return requests


def _union(items: Iterable[Any]) -> list[Any]:
    seen: dict[str, Any] = {}
    for item in items:
        seen.setdefault(str(item), item)
    return list(seen.values())


def group_requests(requests: Iterable[StepRequest], *, correlation_id: str | None) -> list[StepRequest]:
    """Merge requests per (step, CLB) so one writer handles one CLB's work in one batch (rule 5)."""
    groups: dict[tuple[str, str | None, float | None], list[StepRequest]] = {}
    for request in requests:
        groups.setdefault((request.step, request.lb_id, request.not_before), []).append(request)
    merged: list[StepRequest] = []
    for (step, lb_id, not_before), members in groups.items():
        reasons = _union(m.reason for m in members if m.reason)
        reason = "; ".join(reasons[:3]) + (f" (+{len(reasons) - 3} more)" if len(reasons) > 3 else "")
        merged.append(
            StepRequest(
                step=step,  # type: ignore[arg-type]
                lb_id=lb_id,
                not_before=not_before,
                services=_union(s for m in members for s in m.services),
                pods=_union(p for m in members for p in m.pods),
                pod_uids=_union(u for m in members for u in m.pod_uids),
                reason=reason,
                correlation_id=correlation_id,
            )
        )
    order = {"service": 0, "unbind": 1, "bind": 2, "flip": 3, "reconcile": 4}
    return sorted(merged, key=lambda r: (order.get(r.step, 9), r.lb_id or ""))


def plan_changes(
    changes: Sequence[ObjectChange],
    selectors_by_namespace: Mapping[str, Sequence[SelectorEntry]],
    *,
    correlation_id: str | None = None,
) -> list[StepRequest]:
    """Plan every change and group the result per step and CLB."""
    requests = [r for c in changes for r in plan_change(c, selectors_by_namespace.get(c.namespace, ()))]
    return group_requests(requests, correlation_id=correlation_id)


def split_request(request: StepRequest, *, max_bytes: int) -> list[StepRequest]:
    """Split a request whose JSON exceeds `max_bytes` (SCF async Invoke: 128 KB) by halving its lists."""
    if len(request.model_dump_json().encode()) <= max_bytes:
        return [request]
    sizes = {f: len(getattr(request, f)) for f in ("pods", "services", "pod_uids")}
    if max(sizes.values()) <= 1:
        raise InvalidInput(
            f"{request.step} request for {request.lb_id or 'no CLB'} is over {max_bytes} bytes even with one "
            "object; shorten its reason"
        )
    # Halve every longer list at the same point so pods[i] and pod_uids[i] (built together) stay
    # together; a single Service (the usual case) goes with both halves.
    halves: list[dict[str, Any]] = [{}, {}]
    for name, size in sizes.items():
        items = getattr(request, name)
        cut = (size + 1) // 2
        halves[0][name], halves[1][name] = (items[:cut], items[cut:]) if size > 1 else (items, items)
    parts: list[StepRequest] = []
    for update in halves:
        parts.extend(split_request(request.model_copy(update=update), max_bytes=max_bytes))
    return parts
