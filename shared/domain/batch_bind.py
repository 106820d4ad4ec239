"""The bind half of the batch plan, pure: desired backends, extra targets, registrations, use limits.

Called by `shared.domain.batch.plan_batch` for the Services of a batch, after the unbind half (so the
quota it frees and the records it changes are seen). Registration follows rule 2 (ContainersReady),
the quota and use limits rule 9 (a refused Pod gets a Warning once per problem and the message for its
gate condition), records rule 4 (`registering` is recorded before the CLB call). Extra targets on the
Service's listeners go first so that a dead one frees its quota at once: a target no live Pod holds is
deregistered at once, one a live non-backend Pod holds is drained and recorded as that Pod's draining
binding (`origin="extra"`), whose deregistration the unbind half does after the drain timeout.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.domain.backends import DesiredTarget, desired_backends, plan_registration, selects
from shared.domain.batch import (
    ACTIVE_STATES,
    BatchPlan,
    BatchSnapshot,
    ClbAction,
    PodState,
    PutBinding,
    QuotaWait,
    Timeline,
    pod_ref,
    service_lb_id,
    service_ref,
    target_key,
)
from shared.domain.clb_work import ClbWork
from shared.domain.extra_targets import (
    ExtraDecision,
    by_listener,
    claiming_binding,
    describe_extra,
    extra_candidates,
    needed_by,
    plan_extra_target,
)
from shared.domain.limits import pod_limit_problems
from shared.domain.listeners import foreign_listeners, listeners_for_service
from shared.domain.models import (
    EXISTED_LB_ANNOTATION,
    BindingRecord,
    BindingState,
    ObjectKey,
    PodInfo,
    ServiceInfo,
    StepRequest,
    Target,
)


@dataclass
class Wanted:
    """What the batch's Services want on this CLB."""

    services: list[ServiceInfo] = field(default_factory=list)
    whole: list[ServiceInfo] = field(default_factory=list)  # bound whole: their listeners' extras are looked at
    desired: list[DesiredTarget] = field(default_factory=list)
    problems: dict[str, tuple[PodInfo, str]] = field(default_factory=dict)
    stale: list[BindingRecord] = field(default_factory=list)
    listed: list[PodInfo] = field(default_factory=list)
    # Selected Pods of a Service with a port held by a foreign listener (adopted CLB): nothing is
    # registered there, so their flip is asked for here, to say why the gate stays False.
    conflicted: dict[str, ObjectKey] = field(default_factory=dict)


def bindable_services(snap: BatchSnapshot) -> list[ServiceInfo]:
    """The batch's Services that still use direct access on this CLB (others: the service step's job)."""
    found: list[ServiceInfo] = []
    for text in snap.bind_services:
        service = snap.services.get(text)
        if service is not None and service.is_direct_access and service_lb_id(service) == snap.lb_id:
            found.append(service)
    return found


def wanted_backends(snap: BatchSnapshot, plan: BatchPlan) -> Wanted:
    wanted = Wanted()
    for service in bindable_services(snap):
        text = str(service.key)
        scope = snap.bind_pods.get(text)
        pods = snap.service_pods.get(text, []) if scope is None else snap.scoped_pods.get(text, [])
        keys = None if scope is None else set(scope)
        bindings = sorted(
            (
                b
                for b in plan.view.values()
                if b.service == text and (keys is None or f"{b.namespace}/{b.pod_name}" in keys)
            ),
            key=lambda b: b.pod_uid,
        )
        bound = frozenset(b.pod_uid for b in bindings if b.state in ACTIVE_STATES)
        selected = [p for p in pods if selects(service.selector, p.labels)]
        refused = pod_limit_problems(selected, cluster_config=snap.cluster_config, bound_uids=bound)
        backends = desired_backends(
            service,
            listeners_for_service(service, snap.listeners),
            pods,
            default_weight=snap.default_weight,
            refused=refused,
        )
        for warning in backends.warnings:
            plan.event(service_ref(service), type="Warning", reason="InvalidCustomWeight", message=warning)
        if foreign_listeners(service, snap.listeners):
            for pod in selected:
                if pod.deletion_timestamp is None and pod.uid not in snap.true_gates:
                    wanted.conflicted.setdefault(pod.uid, pod.key)
        by_uid = {p.uid: p for p in pods}
        wanted.problems.update({uid: (by_uid[uid], message) for uid, message in refused.items()})
        wanted.services.append(service)
        if scope is None:
            wanted.whole.append(service)
        wanted.listed.extend(pods)
        wanted.desired.extend(backends.targets)
        uids = {t.pod_uid for t in backends.targets}
        # Draining bindings already have a re-check scheduled; only newly unwanted ones need unbind.
        wanted.stale.extend(b for b in bindings if b.pod_uid not in uids and b.state in ACTIVE_STATES)
    return wanted


def plan_binds(
    snap: BatchSnapshot, plan: BatchPlan, actual: list[Target], *, correlation_id: str | None
) -> dict[str, ObjectKey]:
    """Add the bind half's actions to `plan`; returns the Pods to flip (uid -> key)."""
    wanted = wanted_backends(snap, plan)
    actual = plan_extras(snap, plan, wanted, actual, correlation_id=correlation_id)
    flip = plan_registrations(snap, plan, wanted, actual)
    for uid, key in wanted.conflicted.items():
        flip.setdefault(uid, key)
    if wanted.stale:
        uids = sorted({b.pod_uid for b in wanted.stale})
        plan.follow_up(
            StepRequest(step="unbind", pod_uids=uids, lb_id=snap.lb_id, reason="bound Pods no longer wanted")
        )
    return flip


def binding_for(t: DesiredTarget, lb_id: str, state: BindingState, now: float) -> BindingRecord:
    return BindingRecord(
        lb_id=lb_id,
        listener_id=t.listener_id,
        pod_uid=t.pod_uid,
        namespace=t.namespace,
        pod_name=t.pod_name,
        service=t.service,
        ip=t.ip,
        port=t.port,
        weight=t.weight,
        state=state,
        updated_at=now,
    )


def _describe(t: DesiredTarget) -> str:
    return f"{t.namespace}/{t.pod_name}@{t.ip}:{t.port}/{t.listener_id}"


def plan_registrations(
    snap: BatchSnapshot, plan: BatchPlan, wanted: Wanted, actual: list[Target]
) -> dict[str, ObjectKey]:
    reg = plan_registration(wanted.desired, actual, quota=snap.backend_quota)
    problems = dict(wanted.problems)
    by_uid = {p.uid: p for p in wanted.listed}
    for target in reg.over_quota:
        if (pod := by_uid.get(target.pod_uid)) is not None:
            problems[pod.uid] = (
                pod,
                f"backend quota of {snap.backend_quota} per CLB reached on {snap.lb_id}; Pod not registered "
                "(raise the CLB quota and CLB_DIRECT_BACKEND_QUOTA, or scale down)",
            )
    if reg.over_quota:
        waiting = {ClbWork.bind(t.service, f"{t.namespace}/{t.pod_name}") for t in reg.over_quota}
        plan.add(QuotaWait(kind="park_for_quota", items=sorted(waiting, key=ClbWork.member), reason="quota full"))
    lb_id, now = snap.lb_id, snap.now
    for t in reg.register:
        plan.add(PutBinding(binding=binding_for(t, lb_id, "registering", now), reason="registration starts"))
    if reg.register:
        targets, described = [t.target() for t in reg.register], [_describe(t) for t in reg.register]
        plan.add(ClbAction(action="register_targets", targets=targets, described=described, reason="Pods ready"))
    if reg.reweight:
        targets, described = [t.target() for t in reg.reweight], [_describe(t) for t in reg.reweight]
        plan.add(ClbAction(action="set_target_weights", targets=targets, described=described, reason="weight"))
    flip = _record_registered(snap, plan, [*reg.register, *reg.reweight, *reg.already])
    plan.report("registered", *(_describe(t) for t in reg.register))
    plan.report("reweighted", *(_describe(t) for t in reg.reweight))
    _plan_problems(snap, plan, problems, flip)
    if reg.register:
        plan.add(
            Timeline(stage="registered", bindings=[binding_for(t, lb_id, "registered", now) for t in reg.register])
        )
    return flip


def _record_registered(snap: BatchSnapshot, plan: BatchPlan, bound: list[DesiredTarget]) -> dict[str, ObjectKey]:
    flip: dict[str, ObjectKey] = {}
    cleared: set[str] = set()
    for t in bound:
        have = plan.view.get((t.listener_id, t.pod_uid))
        if have is None or have.state != "registered" or have.weight != t.weight or have.ip != t.ip:
            record = binding_for(t, snap.lb_id, "registered", snap.now)
            plan.add(PutBinding(binding=record, reason="registered on the CLB"))
        if t.pod_uid not in snap.true_gates:
            # A True gate is a fence (rule 11): flipping it again would cost a Pod read and decide nothing.
            flip.setdefault(t.pod_uid, ObjectKey(namespace=t.namespace, name=t.pod_name))
        if t.pod_uid in snap.limits and t.pod_uid not in cleared:
            cleared.add(t.pod_uid)
            plan.add(PodState(kind="clear_limit", pod_uid=t.pod_uid, pod=t.pod_name, reason="bound now"))
    return flip


def _plan_problems(
    snap: BatchSnapshot, plan: BatchPlan, problems: dict[str, tuple[PodInfo, str]], flip: dict[str, ObjectKey]
) -> None:
    for uid, (pod, message) in problems.items():
        plan.outcome.setdefault("refused", {})[str(pod.key)] = message
        flip.setdefault(uid, pod.key)
        if snap.limits.get(uid) == message:
            continue  # already reported: one Warning per problem, not one per event
        plan.add(PodState(kind="record_limit", pod_uid=uid, pod=str(pod.key), message=message, reason="use limit"))
        plan.event(pod_ref(pod), type="Warning", reason="DirectAccessLimit", message=message)


def managed_listeners(snap: BatchSnapshot, wanted: Wanted) -> dict[str, ServiceInfo]:
    """Listener id -> the Service bound whole that manages it: only there can a target be judged extra
    (a bind of some Pods of a Service knows its other Pods not, and leaves their targets alone)."""
    adopted = ((s, bool(s.annotations.get(EXISTED_LB_ANNOTATION))) for s in wanted.whole)
    return by_listener(adopted, snap.listeners)


def plan_extras(
    snap: BatchSnapshot, plan: BatchPlan, wanted: Wanted, actual: list[Target], *, correlation_id: str | None
) -> list[Target]:
    """Plan the removal of extra targets; returns `actual` without the ones deregistered at once."""
    managed = managed_listeners(snap, wanted)
    candidates = extra_candidates(actual, managed=managed, desired=(target_key(t) for t in wanted.desired))
    if not candidates:
        return actual
    live = {p.uid for p in [*wanted.listed, *(p for p in snap.pods.values() if p is not None)]}
    bindings = list(plan.view.values())
    deregister: dict[str, list[tuple[Target, str]]] = {}
    drain: dict[str, list[tuple[Target, str, PodInfo]]] = {}
    taken = {*plan.view.keys(), *((t.listener_id, t.pod_uid) for t in wanted.desired)}
    for target in candidates:
        service = managed[target.listener_id]
        claimed = claiming_binding(target, bindings, live)
        holders = snap.ip_holders.get(target.ip, []) if claimed is None else []
        on_this_clb = [
            s
            for p in holders
            for s in snap.namespace_services.get(p.namespace, [])
            if selects(s.selector, p.labels) and service_lb_id(s) == snap.lb_id
        ]
        needed = needed_by(target, holders, on_this_clb, snap.listeners) if claimed is None else None
        decision = plan_extra_target(target, claimed=claimed, needed=needed, ip_holders=holders)
        holder, reason = decision.holder, decision.reason
        if decision.kind == "drain" and holder is not None and (target.listener_id, holder.uid) in taken:
            # Its Pod is (or becomes) a backend on this listener at another port: the one record per Pod
            # and listener is that binding's, so this stale port is cut at once (targetPort changed).
            decision = ExtraDecision("deregister", f"{reason}; it is bound on this listener at another port")
        if decision.kind == "deregister":
            deregister.setdefault(str(service.key), []).append((target, decision.reason))
        elif decision.kind == "drain" and holder is not None:
            taken.add((target.listener_id, holder.uid))
            drain.setdefault(str(service.key), []).append((target, reason, holder))
    services = {str(s.key): s for s in wanted.services}
    for key, items in sorted(deregister.items()):
        _deregister_extra(snap, plan, services[key], items)
    for key, drained in sorted(drain.items()):
        _drain_extra(snap, plan, services[key], drained, correlation_id=correlation_id)
    removed = {target_key(t) for items in deregister.values() for t, _ in items}
    return [t for t in actual if target_key(t) not in removed]


def _deregister_extra(
    snap: BatchSnapshot, plan: BatchPlan, service: ServiceInfo, items: list[tuple[Target, str]]
) -> None:
    targets = [t for t, _ in items]
    described = [f"{describe_extra(t)} ({reason})" for t, reason in items]
    plan.add(
        ClbAction(
            action="deregister_extra_targets",
            targets=targets,
            described=described,
            reason="no live Pod holds their IPs",
            service=str(service.key),
        )
    )
    plan.report("extra_deregistered", *described)
    plan.add(QuotaWait(kind="release_quota_waiters", reason="a deregistration frees backend quota"))
    plan.event(
        service_ref(service),
        type="Normal",
        reason="RemovedExtraTargets",
        message=(
            f"deregistered {len(targets)} target(s) from CLB {snap.lb_id} that no Pod of this Service accounts "
            "for: " + "; ".join(described)
        ),
    )


def _drain_extra(
    snap: BatchSnapshot,
    plan: BatchPlan,
    service: ServiceInfo,
    items: list[tuple[Target, str, PodInfo]],
    *,
    correlation_id: str | None,
) -> None:
    timeout, now = snap.drain_timeout_s, snap.now
    described = [f"{describe_extra(t)} ({reason})" for t, reason, _ in items]
    # A target someone already set to weight 0 needs no call; its drain clock starts now all the same.
    weighted = [t.model_copy(update={"weight": 0}) for t, _, _ in items if t.weight > 0]
    if weighted:
        plan.add(
            ClbAction(
                action="drain_extra_targets",
                targets=weighted,
                described=described,
                reason="a live Pod that is not a backend holds their IPs",
                service=str(service.key),
            )
        )
    for t, _, holder in items:
        record = BindingRecord(
            lb_id=snap.lb_id,
            listener_id=t.listener_id,
            pod_uid=holder.uid,
            namespace=holder.namespace,
            pod_name=holder.name,
            service=str(service.key),
            ip=t.ip,
            port=t.port,
            weight=0,
            state="draining",
            updated_at=now,
            drain_started_at=now,
            origin="extra",
        )
        plan.add(PutBinding(binding=record, reason="extra target drained: the unbind path deregisters it"))
    plan.report("extra_draining", *described)
    plan.event(
        service_ref(service),
        type="Normal",
        reason="DrainingExtraTargets",
        message=(
            f"set {len(items)} target(s) on CLB {snap.lb_id} that no Pod of this Service accounts for to weight "
            f"0; deregistering them after {timeout:g}s: " + "; ".join(described)
        ),
    )
    plan.follow_up(
        StepRequest(
            step="unbind",
            pod_uids=sorted({holder.uid for _, _, holder in items}),
            lb_id=snap.lb_id,
            not_before=now + timeout,
            reason="extra target drain re-check",
            correlation_id=correlation_id,
        )
    )
