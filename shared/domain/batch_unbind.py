"""The unbind half of the batch plan: the one drain path (weight 0, then deregister), pure.

Called by `shared.domain.batch.plan_batch` for the Pod UIDs of a batch. Each binding record of such a
Pod is judged by `backends.plan_unbind` (rule 7: a Pod that is gone is deregistered at once, a live Pod
that stopped qualifying is drained first and deregistered after the drain timeout). The same path ends
the drain of an extra target that a live Pod still holds: the bind half records it as a draining
binding of that Pod (`origin="extra"`), so its deregistration, re-check and Events happen here. A target
another Pod's active binding claims (a reused IP) is never touched, nor one a live Pod of the same
Service needs because it now holds the IP (VPC-CNI reuses addresses).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.domain.backends import ineligibility, plan_unbind, selects
from shared.domain.batch import (
    ACTIVE_STATES,
    BatchPlan,
    BatchSnapshot,
    ClbAction,
    ForgetBinding,
    PodState,
    PutBinding,
    QuotaWait,
    TargetKey,
    Timeline,
    describe_binding,
    service_lb_id,
    service_ref,
    target_key,
)
from shared.domain.extra_targets import describe_extra, needed_by
from shared.domain.models import BindingRecord, PodInfo, StepRequest, Target


@dataclass
class UnbindDecisions:
    drain: list[BindingRecord] = field(default_factory=list)
    deregister: list[BindingRecord] = field(default_factory=list)
    forget: list[BindingRecord] = field(default_factory=list)
    recheck: dict[str, float] = field(default_factory=dict)
    reasons: dict[tuple[str, str], str] = field(default_factory=dict)


def still_wanted(snap: BatchSnapshot, binding: BindingRecord, pod: PodInfo) -> str | None:
    """None while the Pod should stay a backend of this binding's Service on this CLB, else why not."""
    reason = ineligibility(pod)
    if reason:
        return reason
    service = snap.services.get(binding.service)
    if service is None or not service.is_direct_access:
        return f"Service {binding.service} no longer uses direct access"
    if service_lb_id(service) != binding.lb_id:
        return f"Service {binding.service} moved to another CLB"
    if not selects(service.selector, pod.labels):
        return f"Pod no longer selected by Service {binding.service}"
    return None


def decide_unbinds(snap: BatchSnapshot, plan: BatchPlan) -> UnbindDecisions:
    """Judge every binding of the batch's Pods (the pure rule is `backends.plan_unbind`)."""
    uids = set(snap.unbind_uids)
    # A target another Pod's active binding claims now belongs to that Pod (its IP was reused, e.g. a
    # StatefulSet Pod re-created with a fixed IP): forget the old record, never touch the target.
    claimed = {target_key(b) for b in snap.bindings if b.pod_uid not in uids and b.state in ACTIVE_STATES}
    on_clb = {target_key(t) for t in snap.actual} - claimed
    found = UnbindDecisions()
    for binding in sorted(plan.view.values(), key=lambda b: (b.pod_uid, b.listener_id)):
        if binding.pod_uid not in uids:
            continue
        pod = snap.pods.get(f"{binding.namespace}/{binding.pod_name}")
        live = pod is not None and pod.uid == binding.pod_uid
        wanted = still_wanted(snap, binding, pod) if pod is not None and live else "gone"
        decision = plan_unbind(binding, pod, still_wanted=wanted, now=snap.now, drain_timeout_s=snap.drain_timeout_s)
        present = target_key(binding) in on_clb
        found.reasons[(binding.listener_id, binding.pod_uid)] = decision.reason
        if decision.kind == "keep":
            plan.report("kept", describe_binding(binding))
        elif decision.kind == "forget" or (decision.kind in ("deregister", "drain") and not present):
            found.forget.append(binding)
        elif decision.kind == "deregister":
            found.deregister.append(binding)
        elif decision.kind == "drain":
            found.drain.append(binding)
        if decision.recheck_at is not None and decision.kind in ("drain", "wait"):
            found.recheck[binding.pod_uid] = max(found.recheck.get(binding.pod_uid, 0.0), decision.recheck_at)
    return found


def reused_targets(snap: BatchSnapshot, bindings: list[BindingRecord]) -> set[TargetKey]:
    """Targets of these bindings that a live, eligible Pod of the same Service needs because it now holds
    the same IP, before its own binding exists (rule 1): keep the target, drop only the old record."""
    found: set[TargetKey] = set()
    for text in sorted({b.service for b in bindings}):
        service = snap.services.get(text)
        if service is None or not service.is_direct_access:
            continue
        mine = [b for b in bindings if b.service == text]
        held = {p.uid: p for ip in sorted({b.ip for b in mine}) for p in snap.ip_holders.get(ip, [])}
        pods = [p for p in held.values() if p.namespace == service.namespace and selects(service.selector, p.labels)]
        for b in mine:
            target = Target(listener_id=b.listener_id, ip=b.ip, port=b.port)
            if pods and needed_by(target, pods, [service], snap.listeners) is not None:
                found.add(target_key(target))
    return found


def plan_unbinds(snap: BatchSnapshot, plan: BatchPlan, *, correlation_id: str | None) -> set[TargetKey]:
    """Add the unbind half's actions to `plan`; returns the targets it deregisters."""
    found = decide_unbinds(snap, plan)
    reused = reused_targets(snap, found.deregister) if found.deregister else set()
    found.forget.extend(b for b in found.deregister if target_key(b) in reused)
    deregister = [b for b in found.deregister if target_key(b) not in reused]
    _plan_drain(snap, plan, found.drain)
    _plan_deregister(snap, plan, deregister, found.reasons)
    own = [b for b in [*found.drain, *deregister] if b.origin == "bind"]
    leaving = [b for b in own if _leaving(snap, b)]
    if leaving:
        plan.add(Timeline(stage="deletion_seen", bindings=leaving))
    for stage, records in (("weight_zero", found.drain), ("deregistered", deregister)):
        marks = [b for b in records if b.origin == "bind"]
        if marks:
            plan.add(Timeline(stage=stage, bindings=marks))  # type: ignore[arg-type]
    for b in [*deregister, *found.forget]:
        plan.add(ForgetBinding(binding=b, reason=found.reasons.get((b.listener_id, b.pod_uid), "")))
    for uid in sorted({b.pod_uid for b in [*deregister, *found.forget] if b.origin == "bind"}):
        if uid not in snap.bound_elsewhere and not any(b.pod_uid == uid for b in plan.view.values()):
            plan.add(PodState(kind="forget_pod_state", pod_uid=uid, pod=uid, reason="no binding left"))
    _plan_rechecks(snap, plan, found.recheck, correlation_id)
    return {target_key(b) for b in deregister}


def _leaving(snap: BatchSnapshot, b: BindingRecord) -> bool:
    pod = snap.pods.get(f"{b.namespace}/{b.pod_name}")
    return pod is None or pod.uid != b.pod_uid or pod.deletion_timestamp is not None


def _plan_drain(snap: BatchSnapshot, plan: BatchPlan, drain: list[BindingRecord]) -> None:
    if not drain:
        return
    targets = [Target(listener_id=b.listener_id, ip=b.ip, port=b.port, weight=0) for b in drain]
    described = [describe_binding(b) for b in drain]
    plan.add(ClbAction(action="drain_targets", targets=targets, described=described, reason="Pods leaving"))
    for b in drain:
        update = {"state": "draining", "weight": 0, "drain_started_at": snap.now, "updated_at": snap.now}
        plan.add(PutBinding(binding=b.model_copy(update=update), reason="drain started"))
    plan.report("drained", *described)


def _plan_deregister(
    snap: BatchSnapshot, plan: BatchPlan, deregister: list[BindingRecord], reasons: dict[tuple[str, str], str]
) -> None:
    if not deregister:
        return
    targets = [Target(listener_id=b.listener_id, ip=b.ip, port=b.port, weight=b.weight) for b in deregister]
    described = [describe_binding(b) for b in deregister]
    plan.add(ClbAction(action="deregister_targets", targets=targets, described=described, reason="Pods gone"))
    plan.add(QuotaWait(kind="release_quota_waiters", reason="a deregistration frees backend quota"))
    plan.report("deregistered", *described)
    extra = [b for b in deregister if b.origin == "extra"]
    for text in sorted({b.service for b in extra}):
        service = snap.services.get(text)
        items = [f"{describe_extra(_target(b))} ({reasons.get((b.listener_id, b.pod_uid), '')})" for b in extra]
        plan.report("extra_deregistered", *items)
        if service is not None:
            plan.event(
                service_ref(service),
                type="Normal",
                reason="RemovedExtraTargets",
                message=(
                    f"deregistered {len(items)} target(s) from CLB {snap.lb_id} that no Pod of this Service "
                    "accounts for: " + "; ".join(items)
                ),
            )


def _target(b: BindingRecord) -> Target:
    return Target(listener_id=b.listener_id, ip=b.ip, port=b.port, weight=b.weight)


def _plan_rechecks(snap: BatchSnapshot, plan: BatchPlan, recheck: dict[str, float], correlation_id: str | None) -> None:
    due: dict[float, list[str]] = {}
    for uid, when in sorted(recheck.items()):
        due.setdefault(when, []).append(uid)
    for when, uids in sorted(due.items()):
        # Scheduled per Pod (a duplicate event moves the same item, it adds none); Pods drained together
        # are due together, so the timer re-checks them in one request: one deregistration for the wave.
        plan.follow_up(
            StepRequest(
                step="unbind",
                pod_uids=uids,
                lb_id=snap.lb_id,
                not_before=when,
                reason="drain timeout re-check",
                correlation_id=correlation_id,
            )
        )
