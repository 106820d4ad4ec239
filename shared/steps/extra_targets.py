"""Removing extra targets from a Service's listeners: the bind batch's anti-entropy in the other direction.

Called by `clb_batch._bind` (so by every bind step and every reconcile pass) after it has worked out the
desired backends of the Services in its batch and before it plans registrations, so the quota freed by a
dead target is available at once. The rules are in `shared/domain/extra_targets.py`; this module reads
only what a candidate needs (nothing at all when every target on the managed listeners is desired),
applies the decisions through the `Recorder`, keeps the drain start of a target that has no binding
record under a KV key, schedules the re-check that deregisters it after the drain timeout (a bind step
for its Service), and reports each removal as a Normal Event on the Service and a log line. The unbind
batch uses `reused_by_live_pods` so it never deregisters a target a live Pod reusing the IP needs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

from shared.deps import Deps
from shared.domain.backends import DesiredTarget
from shared.domain.extra_targets import (
    TargetKey,
    by_listener,
    claiming_binding,
    describe_extra,
    extra_candidates,
    needed_by,
    plan_extra_target,
    target_key,
)
from shared.domain.models import (
    EXISTED_LB_ANNOTATION,
    BindingRecord,
    Listener,
    ObjectKey,
    PodInfo,
    ServiceInfo,
    StepRequest,
    Target,
)
from shared.keys import drain_marker_key
from shared.logging import get_logger
from shared.steps.common import Recorder, emit, follow_up, selecting_services, service_lb_id, service_ref

log = get_logger("clb_direct.steps")


def reused_by_live_pods(
    deps: Deps, lb_id: str, bindings: Sequence[BindingRecord], services: dict[str, ServiceInfo | None]
) -> set[TargetKey]:
    """Targets of these bindings that a live, eligible Pod of the same Service needs because it now holds
    the same IP (VPC-CNI reuses addresses; fixed-IP StatefulSets), before its own binding exists.

    Called by the unbind batch before it deregisters a binding's target: one Pod list per Service, and a
    listener read only when such a Pod turns up. `services` is the caller's Service cache.
    """
    cluster = deps.require_cluster()
    found: set[TargetKey] = set()
    listeners: list[Listener] | None = None
    for text in sorted({b.service for b in bindings}):
        if text not in services:
            key = ObjectKey.parse(text)
            services[text] = cluster.get_service(key.namespace, key.name)
        service = services[text]
        if service is None or not service.is_direct_access or service_lb_id(service) != lb_id:
            continue
        mine = [b for b in bindings if b.service == text]
        ips = {b.ip for b in mine}
        pods = [p for p in cluster.list_pods(service.namespace, service.selector) if p.ip in ips]
        if not pods:
            continue
        listeners = listeners if listeners is not None else deps.require_clb().list_listeners(lb_id)
        for b in mine:
            target = Target(listener_id=b.listener_id, ip=b.ip, port=b.port)
            if needed_by(target, pods, [service], listeners) is not None:
                found.add(target_key(target))
    return found


@dataclass
class ExtraOutcome:
    deregistered: list[str] = field(default_factory=list)
    draining: list[str] = field(default_factory=list)
    removed: set[TargetKey] = field(default_factory=set)


def remove_extra_targets(
    deps: Deps,
    lb_id: str,
    *,
    services: Sequence[ServiceInfo],
    listeners: Sequence[Listener],
    desired: Sequence[DesiredTarget],
    actual: Sequence[Target],
    listed_pods: Sequence[PodInfo],
    rec: Recorder,
    correlation_id: str | None,
) -> ExtraOutcome:
    """`listed_pods` are the live Pods the caller already listed: a record of one of them needs no lookup
    (during a rollout every draining target is such a record, so this keeps a bind batch at one list)."""
    outcome = ExtraOutcome()
    managed = by_listener(((s, bool(s.annotations.get(EXISTED_LB_ANNOTATION))) for s in services), listeners)
    candidates = extra_candidates(actual, managed=managed, desired=((t.listener_id, t.ip, t.port) for t in desired))
    if not candidates:
        return outcome
    cluster, store, now = deps.require_cluster(), deps.store, deps.clock.now()
    timeout = deps.settings.drain_timeout_s
    bindings = store.list_bindings(lb_id=lb_id)
    live: dict[tuple[str, str], PodInfo | None] = {(p.namespace, p.name): p for p in listed_pods}
    for b in bindings:
        if any(target_key(t) == (b.listener_id, b.ip, b.port) for t in candidates):
            where = (b.namespace, b.pod_name)
            if where not in live:
                live[where] = cluster.get_pod(*where)
    live_uids = {pod.uid for pod in live.values() if pod is not None}
    holders: dict[str, list[PodInfo]] = {}
    service_cache: dict[str, list[ServiceInfo]] = {}
    deregister: dict[str, list[tuple[Target, str]]] = defaultdict(list)
    drain: dict[str, list[tuple[Target, str, float]]] = defaultdict(list)
    for target in candidates:
        service = managed[target.listener_id]
        claimed = claiming_binding(target, bindings, live_uids)
        if claimed is None and target.ip not in holders:
            holders[target.ip] = cluster.list_pods_with_ip(target.ip)
        pods = holders.get(target.ip, [])
        on_this_clb = [s for p in pods for s in selecting_services(deps, p, service_cache) if service_lb_id(s) == lb_id]
        marker = store.kv_get(drain_marker_key(lb_id, target), now=now)
        decision = plan_extra_target(
            target,
            claimed=claimed,
            needed=needed_by(target, pods, on_this_clb, listeners) if claimed is None else None,
            ip_holders=pods,
            drain_started_at=float(marker) if marker else None,
            now=now,
            drain_timeout_s=timeout,
        )
        if decision.kind == "deregister":
            deregister[str(service.key)].append((target, decision.reason))
        elif decision.kind == "drain":
            drain[str(service.key)].append((target, decision.reason, now + timeout))
    services_by_key = {str(s.key): s for s in services}
    for key, items in sorted(deregister.items()):
        _deregister(deps, lb_id, services_by_key[key], items, rec=rec, outcome=outcome)
    for key, drained in sorted(drain.items()):
        _drain(deps, lb_id, services_by_key[key], drained, rec=rec, outcome=outcome, correlation_id=correlation_id)
    return outcome


def _deregister(
    deps: Deps,
    lb_id: str,
    service: ServiceInfo,
    items: list[tuple[Target, str]],
    *,
    rec: Recorder,
    outcome: ExtraOutcome,
) -> None:
    clb, store = deps.require_clb(), deps.store
    targets = [t for t, _ in items]
    described = [f"{describe_extra(t)} ({reason})" for t, reason in items]
    rec.do(
        "deregister_extra_targets",
        lambda: clb.deregister_targets(lb_id, targets),
        lb_id=lb_id,
        service=str(service.key),
        count=len(targets),
        targets=described,
    )
    for t in targets:
        rec.do("forget_extra_drain", partial(store.kv_delete, drain_marker_key(lb_id, t)), target=describe_extra(t))
    outcome.deregistered.extend(described)
    outcome.removed.update(target_key(t) for t in targets)
    if not rec.dry_run:
        log.info("targets.extra_removed", lb_id=lb_id, service=str(service.key), targets=described)
    emit(
        deps,
        rec,
        service_ref(service),
        type="Normal",
        reason="RemovedExtraTargets",
        message=(
            f"deregistered {len(targets)} target(s) from CLB {lb_id} that no Pod of this Service accounts for: "
            + "; ".join(described)
        ),
    )


def _drain(
    deps: Deps,
    lb_id: str,
    service: ServiceInfo,
    items: list[tuple[Target, str, float]],
    *,
    rec: Recorder,
    outcome: ExtraOutcome,
    correlation_id: str | None,
) -> None:
    clb, store, now = deps.require_clb(), deps.store, deps.clock.now()
    timeout = deps.settings.drain_timeout_s
    described = [f"{describe_extra(t)} ({reason})" for t, reason, _ in items]
    # A target someone already set to weight 0 needs no call; its drain clock starts now all the same.
    weighted = [t.model_copy(update={"weight": 0}) for t, _, _ in items if t.weight > 0]
    if weighted:
        rec.do(
            "drain_extra_targets",
            lambda: clb.set_target_weights(lb_id, weighted),
            lb_id=lb_id,
            service=str(service.key),
            count=len(weighted),
            targets=described,
        )
    for t, _, _ in items:
        rec.do(
            "record_extra_drain",
            partial(store.kv_set, drain_marker_key(lb_id, t), repr(now), ttl_s=timeout + 3600, now=now),
            target=describe_extra(t),
        )
    outcome.draining.extend(described)
    if not rec.dry_run:
        log.info("targets.extra_draining", lb_id=lb_id, service=str(service.key), targets=described)
    emit(
        deps,
        rec,
        service_ref(service),
        type="Normal",
        reason="DrainingExtraTargets",
        message=(
            f"set {len(items)} target(s) on CLB {lb_id} that no Pod of this Service accounts for to weight 0; "
            f"deregistering them after {timeout:g}s: " + "; ".join(described)
        ),
    )
    follow_up(
        deps,
        rec,
        StepRequest(
            step="bind",
            services=[service.key],
            lb_id=lb_id,
            not_before=max(when for _, _, when in items),
            reason="extra target drain re-check",
            correlation_id=correlation_id,
        ),
    )
