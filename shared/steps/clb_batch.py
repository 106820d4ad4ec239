"""The per-CLB write batch: registration (bind) and drain/deregistration (unbind) in one pass.

The bind and unbind steps queue typed `ClbWork` items (bind a Service, unbind a Pod UID) on the CLB's `ClbWriter`;
whichever invocation holds the CLB's lease runs `process_batch` over everything pending, so a rollout's
many events collapse into one list, one plan and a few ≤500-target calls (architecture rule 5). Each item is
re-checked against live state (rule 1), binding records are kept before and after every write (rule 4),
use limits are reported as Warning Events and remembered for the gate message (rule 9), and follow-ups
(flip, delayed drain re-checks) are queued by whoever did the work.
"""

from __future__ import annotations

import contextvars
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from shared.deps import Deps
from shared.domain.backends import (
    DesiredTarget,
    desired_backends,
    ineligibility,
    plan_registration,
    plan_unbind,
    selects,
)
from shared.domain.clb_work import ClbWork, split_work
from shared.domain.limits import pod_limit_problems
from shared.domain.listeners import listeners_for_service
from shared.domain.models import BindingRecord, ObjectKey, ObjectRef, PodInfo, ServiceInfo, StepRequest, Target
from shared.keys import gate_key, limit_key
from shared.ports import KeyValueStore
from shared.steps.common import Recorder, emit, follow_up, service_lb_id, service_ref
from shared.steps.extra_targets import remove_extra_targets, reused_by_live_pods
from shared.timeline import record_bindings, record_registered


@dataclass
class BatchOutcome:
    registered: list[str] = field(default_factory=list)
    reweighted: list[str] = field(default_factory=list)
    drained: list[str] = field(default_factory=list)
    deregistered: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)
    extra_deregistered: list[str] = field(default_factory=list)
    extra_draining: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v}


def _describe(t: DesiredTarget | BindingRecord) -> str:
    name = t.pod_name
    return f"{t.namespace}/{name}@{t.ip}:{t.port}/{t.listener_id}"


def process_batch(
    deps: Deps, lb_id: str, items: list[ClbWork], rec: Recorder, *, correlation_id: str | None
) -> BatchOutcome:
    outcome = BatchOutcome()
    services, pod_uids = split_work(items)
    actual = deps.require_clb().list_targets(lb_id)
    flip: dict[str, ObjectKey] = {}
    if pod_uids:
        removed = _unbind(
            deps, lb_id, pod_uids=pod_uids, actual=actual, rec=rec, outcome=outcome, correlation_id=correlation_id
        )
        actual = [t for t in actual if (t.listener_id, t.ip, t.port) not in removed]
    if services:
        _bind(
            deps,
            lb_id,
            service_keys=services,
            actual=actual,
            rec=rec,
            outcome=outcome,
            flip=flip,
            correlation_id=correlation_id,
        )
    if flip:
        follow_up(
            deps,
            rec,
            StepRequest(
                step="flip",
                pods=list(flip.values()),
                lb_id=lb_id,
                reason="targets registered",
                correlation_id=correlation_id,
            ),
        )
    return outcome


def _bind(
    deps: Deps,
    lb_id: str,
    *,
    service_keys: list[str],
    actual: list[Target],
    rec: Recorder,
    outcome: BatchOutcome,
    flip: dict[str, ObjectKey],
    correlation_id: str | None,
) -> None:
    cluster, clb, store, now = deps.require_cluster(), deps.require_clb(), deps.store, deps.clock.now()
    cluster_config = cluster.get_cluster_config()
    listeners = clb.list_listeners(lb_id)
    desired: list[DesiredTarget] = []
    problems: dict[str, tuple[PodInfo, str]] = {}
    stale: list[BindingRecord] = []
    batch_services: list[ServiceInfo] = []
    listed_pods: list[PodInfo] = []
    for text in service_keys:
        key = ObjectKey.parse(text)
        service = cluster.get_service(key.namespace, key.name)
        if service is None or not service.is_direct_access or service_lb_id(service) != lb_id:
            continue  # stale request: the service step owns teardown
        batch_services.append(service)
        pods = cluster.list_pods(service.namespace, service.selector) if service.selector else []
        listed_pods.extend(pods)
        bindings = store.list_bindings(lb_id=lb_id, service=text)
        bound = frozenset(b.pod_uid for b in bindings if b.state in ("registering", "registered"))
        refused = pod_limit_problems(
            [p for p in pods if selects(service.selector, p.labels)], cluster_config=cluster_config, bound_uids=bound
        )
        wanted = desired_backends(
            service,
            listeners_for_service(service, listeners),
            pods,
            default_weight=deps.settings.default_weight,
            refused=refused,
        )
        for warning in wanted.warnings:
            emit(deps, rec, service_ref(service), type="Warning", reason="InvalidCustomWeight", message=warning)
        by_uid = {p.uid: p for p in pods}
        for uid, message in refused.items():
            problems[uid] = (by_uid[uid], message)
        desired.extend(wanted.targets)
        wanted_uids = {t.pod_uid for t in wanted.targets}
        # Draining bindings already have a re-check scheduled; only newly unwanted ones need unbind.
        stale.extend(b for b in bindings if b.pod_uid not in wanted_uids and b.state in ("registering", "registered"))
    # Extra targets go first: a dead one frees its quota for the registrations planned next.
    extra = remove_extra_targets(
        deps,
        lb_id,
        services=batch_services,
        listeners=listeners,
        desired=desired,
        actual=actual,
        listed_pods=listed_pods,
        rec=rec,
        correlation_id=correlation_id,
    )
    outcome.extra_deregistered.extend(extra.deregistered)
    outcome.extra_draining.extend(extra.draining)
    actual = [t for t in actual if (t.listener_id, t.ip, t.port) not in extra.removed]
    plan = plan_registration(desired, actual, quota=deps.settings.backend_quota)
    for target in plan.over_quota:
        pod = cluster.get_pod(target.namespace, target.pod_name)
        if pod is not None and pod.uid == target.pod_uid:
            problems[pod.uid] = (
                pod,
                (
                    f"backend quota of {deps.settings.backend_quota} per CLB reached on {lb_id}; Pod not registered "
                    "(raise the CLB quota and CLB_DIRECT_BACKEND_QUOTA, or scale down)"
                ),
            )
    records = {(b.listener_id, b.pod_uid): b for b in store.list_bindings(lb_id=lb_id)}
    if plan.register:
        for t in plan.register:
            _record(deps, rec, t, lb_id=lb_id, state="registering", now=now)
        rec.do(
            "register_targets",
            lambda: clb.register_targets(lb_id, [t.target() for t in plan.register]),
            lb_id=lb_id,
            count=len(plan.register),
            targets=[_describe(t) for t in plan.register],
        )
    registered_at = deps.clock.now()
    if plan.reweight:
        rec.do(
            "set_target_weights",
            lambda: clb.set_target_weights(lb_id, [t.target() for t in plan.reweight]),
            lb_id=lb_id,
            count=len(plan.reweight),
            targets=[_describe(t) for t in plan.reweight],
        )
    for t in [*plan.register, *plan.reweight, *plan.already]:
        have = records.get((t.listener_id, t.pod_uid))
        if have is None or have.state != "registered" or have.weight != t.weight or have.ip != t.ip:
            _record(deps, rec, t, lb_id=lb_id, state="registered", now=now)
        if store.kv_get(gate_key(t.pod_uid), now=now) != "True":
            # A True gate is a fence (rule 11): flipping it again would cost a Pod read and decide nothing.
            flip.setdefault(t.pod_uid, ObjectKey(namespace=t.namespace, name=t.pod_name))
        if store.kv_get(limit_key(t.pod_uid), now=now) is not None:
            rec.do("clear_limit", partial(store.kv_delete, limit_key(t.pod_uid)), pod=t.pod_name)
    outcome.registered.extend(_describe(t) for t in plan.register)
    outcome.reweighted.extend(_describe(t) for t in plan.reweight)
    for uid, (pod, message) in problems.items():
        outcome.refused[str(pod.key)] = message
        flip.setdefault(uid, pod.key)
        if store.kv_get(limit_key(uid), now=now) == message:
            continue  # already reported: one Warning per problem, not one per event
        rec.do(
            "record_limit",
            partial(store.kv_set, limit_key(uid), message, ttl_s=None, now=now),
            pod=str(pod.key),
        )
        emit(
            deps,
            rec,
            ObjectRef(kind="Pod", namespace=pod.namespace, name=pod.name, uid=pod.uid),
            type="Warning",
            reason="DirectAccessLimit",
            message=message,
        )
    if plan.register and not rec.dry_run:
        record_registered(store, plan.register, {p.uid: p for p in listed_pods}, now=registered_at)
    if stale:
        uids = sorted({b.pod_uid for b in stale})
        follow_up(
            deps, rec, StepRequest(step="unbind", pod_uids=uids, lb_id=lb_id, reason="bound Pods no longer wanted")
        )


def _forget_pod_state(store: KeyValueStore, pod_uid: str) -> None:
    store.kv_delete(gate_key(pod_uid))
    store.kv_delete(limit_key(pod_uid))


def _record(deps: Deps, rec: Recorder, t: DesiredTarget, *, lb_id: str, state: str, now: float) -> None:
    record = BindingRecord(
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
    )  # type: ignore[arg-type]
    rec.do(
        "record_binding", lambda: deps.store.put_binding(record), pod=t.pod_name, listener_id=t.listener_id, state=state
    )


def _still_wanted(deps: Deps, binding: BindingRecord, pod: PodInfo, cache: dict[str, Any]) -> str | None:
    reason = ineligibility(pod)
    if reason:
        return reason
    key = ObjectKey.parse(binding.service)
    if binding.service not in cache:
        cache[binding.service] = deps.require_cluster().get_service(key.namespace, key.name)
    service = cache[binding.service]
    if service is None or not service.is_direct_access:
        return f"Service {binding.service} no longer uses direct access"
    if service_lb_id(service) != binding.lb_id:
        return f"Service {binding.service} moved to another CLB"
    if not selects(service.selector, pod.labels):
        return f"Pod no longer selected by Service {binding.service}"
    return None


# Pod reads of one unbind batch run this many at a time: a wave of terminating Pods is read in about one
# round trip instead of one per Pod, so their weight 0 is not queued behind N sequential GETs.
POD_READ_CONCURRENCY = 8


def _get_pods(cluster: Any, keys: set[tuple[str, str]]) -> dict[tuple[str, str], PodInfo | None]:
    ordered = sorted(keys)
    if len(ordered) <= 1:
        return {key: cluster.get_pod(*key) for key in ordered}
    with ThreadPoolExecutor(max_workers=min(POD_READ_CONCURRENCY, len(ordered)), thread_name_prefix="unbind") as pool:
        found = list(pool.map(lambda key: contextvars.copy_context().run(cluster.get_pod, *key), ordered))
    return dict(zip(ordered, found, strict=True))


def _unbind(
    deps: Deps,
    lb_id: str,
    *,
    pod_uids: list[str],
    actual: list[Target],
    rec: Recorder,
    outcome: BatchOutcome,
    correlation_id: str | None,
) -> set[tuple[str, str, int]]:
    cluster, clb, store, now = deps.require_cluster(), deps.require_clb(), deps.store, deps.clock.now()
    # A target another Pod's active binding claims now belongs to that Pod (its IP was reused, e.g. a
    # StatefulSet Pod re-created with a fixed IP): forget the old record, never touch the target.
    claimed = {
        (b.listener_id, b.ip, b.port)
        for b in store.list_bindings(lb_id=lb_id)
        if b.pod_uid not in pod_uids and b.state in ("registering", "registered")
    }
    on_clb = {(t.listener_id, t.ip, t.port) for t in actual} - claimed
    drain: list[BindingRecord] = []
    deregister: list[BindingRecord] = []
    forget: list[BindingRecord] = []
    recheck: dict[str, float] = {}
    pods: dict[tuple[str, str], PodInfo | None] = {}
    services: dict[str, Any] = {}
    by_uid = {uid: store.list_bindings(lb_id=lb_id, pod_uid=uid) for uid in pod_uids}
    pods.update(_get_pods(cluster, {(b.namespace, b.pod_name) for bs in by_uid.values() for b in bs}))
    for uid in pod_uids:
        for binding in by_uid[uid]:
            pod = pods[(binding.namespace, binding.pod_name)]
            wanted = _still_wanted(deps, binding, pod, services) if pod and pod.uid == uid else "gone"
            decision = plan_unbind(
                binding, pod, still_wanted=wanted, now=now, drain_timeout_s=deps.settings.drain_timeout_s
            )
            present = (binding.listener_id, binding.ip, binding.port) in on_clb
            if decision.kind == "keep":
                outcome.kept.append(_describe(binding))
            elif decision.kind == "forget" or (decision.kind == "deregister" and not present):
                forget.append(binding)
            elif decision.kind == "deregister":
                deregister.append(binding)
            elif decision.kind == "drain" and not present:
                forget.append(binding)
            elif decision.kind == "drain":
                drain.append(binding)
            if decision.recheck_at is not None and decision.kind in ("drain", "wait"):
                recheck[uid] = max(recheck.get(uid, 0.0), decision.recheck_at)
    leaving = [
        b
        for b in [*drain, *deregister]
        if (p := pods.get((b.namespace, b.pod_name))) is None or p.uid != b.pod_uid or p.deletion_timestamp
    ]
    drained_at = deregistered_at = now
    if drain:
        targets = [Target(listener_id=b.listener_id, ip=b.ip, port=b.port, weight=0) for b in drain]
        rec.do(
            "drain_targets",
            lambda: clb.set_target_weights(lb_id, targets),
            lb_id=lb_id,
            count=len(targets),
            targets=[_describe(b) for b in drain],
        )
        drained_at = deps.clock.now()
        for b in drain:
            updated = b.model_copy(
                update={"state": "draining", "weight": 0, "drain_started_at": now, "updated_at": now}
            )
            rec.do("record_binding", partial(store.put_binding, updated), pod=b.pod_name, state="draining")
        outcome.drained.extend(_describe(b) for b in drain)
    # Weight 0 first: the IP-reuse check below lists Pods per IP, and terminating Pods must not wait for it.
    reused = reused_by_live_pods(deps, lb_id, deregister, services) if deregister else set()
    if reused:
        # The IP now belongs to a live Pod that needs this very target (rule 1): keep it, drop the old record.
        forget.extend(b for b in deregister if (b.listener_id, b.ip, b.port) in reused)
        deregister = [b for b in deregister if (b.listener_id, b.ip, b.port) not in reused]
    if deregister:
        targets = [Target(listener_id=b.listener_id, ip=b.ip, port=b.port, weight=b.weight) for b in deregister]
        rec.do(
            "deregister_targets",
            lambda: clb.deregister_targets(lb_id, targets),
            lb_id=lb_id,
            count=len(targets),
            targets=[_describe(b) for b in deregister],
        )
        outcome.deregistered.extend(_describe(b) for b in deregister)
        deregistered_at = deps.clock.now()
    if not rec.dry_run:
        # Timelines after the CLB calls: recording them must not delay taking Pods out of rotation.
        record_bindings(store, leaving, "deletion_seen", now=now)
        record_bindings(store, drain, "weight_zero", now=drained_at)
        record_bindings(store, deregister, "deregistered", now=deregistered_at)
    for b in [*deregister, *forget]:
        rec.do(
            "forget_binding",
            partial(store.delete_binding, b.lb_id, b.listener_id, b.pod_uid),
            pod=b.pod_name,
            listener_id=b.listener_id,
        )
    gone = {b.pod_uid for b in [*deregister, *forget]}
    for uid in gone:
        if not store.list_bindings(pod_uid=uid) or rec.dry_run:
            rec.do(
                "forget_pod_state",
                partial(_forget_pod_state, store, uid),
                pod_uid=uid,
            )
    due: dict[float, list[str]] = {}
    for uid, when in sorted(recheck.items()):
        due.setdefault(when, []).append(uid)
    for when, uids in sorted(due.items()):
        # Scheduled per Pod (a duplicate event moves the same item, it adds none); Pods drained together
        # are due together, so the timer re-checks them in one request: one deregistration for the wave.
        follow_up(
            deps,
            rec,
            StepRequest(
                step="unbind",
                pod_uids=uids,
                lb_id=lb_id,
                not_before=when,
                reason="drain timeout re-check",
                correlation_id=correlation_id,
            ),
        )
    return {(b.listener_id, b.ip, b.port) for b in deregister}
