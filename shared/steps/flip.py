"""The flip step: observe the Pods -> a typed `FlipPlan` (pure) -> one applier (rules 1, 8 and 11).

Called through `run_step` for StepRequest(step="flip") (from bind, the health function, reconcile) and
directly by the service step's teardown to release gates (`flip_pods`). `observe_flip` re-reads the Pods
named (by key or UID) and those the Services named select; `observe_gates` then reads, once each, what
planning them needs: the gate and use-limit records in one store call, the direct-access Services of their
namespaces, one DescribeTargetHealth for every CLB involved and those CLBs' listeners. The rules are in
`shared.domain.flip_plan.plan_flip`; `apply_flip_plan` carries the plan out through the `Recorder`: its
actions in order, then the per-Pod gate writes concurrently, at most `Settings.flip_concurrency` at a time.
A dry run records the actions, executes none, and returns the plan.
"""

from __future__ import annotations

import contextvars
import threading
import weakref
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from shared.deps import Deps
from shared.domain.batch import EmitEvent, service_lb_id
from shared.domain.flip_plan import (
    FlipAction,
    FlipPlan,
    FlipSnapshot,
    GateWrite,
    PatchGate,
    RecordGate,
    RecordTimeline,
    ScheduleRecheck,
    disposition,
    needs_services,
    plan_flip,
    selecting,
)
from shared.domain.models import Listener, ObjectKey, PodInfo, ServiceInfo, StepRequest, TargetHealth
from shared.keys import gate_key, limit_key
from shared.schedule import schedule_request
from shared.steps.common import Recorder, emit
from shared.timeline import has_stage, record_stage

# Listeners change only when a Service's ports or TkeServiceConfig do; a warm container reuses what it
# listed for a few seconds, so per-Pod flips cost one DescribeListeners per CLB per TTL, not one each
# (the read limit is 20/s). A stale list errs towards "not healthy yet", never towards True: a listener
# missing from it counts as pending, a removed one has no health.
LISTENER_CACHE_TTL_S = 10.0
_listener_cache: weakref.WeakKeyDictionary[object, dict[str, tuple[float, list[Listener]]]] = (
    weakref.WeakKeyDictionary()
)
_listener_lock = threading.Lock()


def run_flip(deps: Deps, request: StepRequest, rec: Recorder) -> dict[str, Any]:
    """Flip the Pods named (by key or UID) and every Pod selected by the Services named."""
    snapshot = observe_flip(deps, request)
    plan = plan_flip(snapshot)
    apply_flip_plan(deps, plan, rec, pods={p.uid: p for p in snapshot.pods})
    result = plan.summary()
    if rec.dry_run:
        result["plan"] = plan.model_dump(mode="json")
    return result


def flip_pods(deps: Deps, pods: Iterable[PodInfo | None], rec: Recorder) -> list[dict[str, Any]]:
    """Decide and write the gates of these Pods as given (the service step's release); one answer per Pod."""
    snapshot = observe_gates(deps, pods)
    plan = plan_flip(snapshot)
    apply_flip_plan(deps, plan, rec, pods={p.uid: p for p in snapshot.pods})
    answers: list[dict[str, Any]] = plan.summary()["pods"]
    return answers


# ----------------------------------------------------------------------------------------------- observe
def observe_flip(deps: Deps, request: StepRequest) -> FlipSnapshot:
    """The request's Pods, re-read live, and what planning their gates needs."""
    cluster = deps.require_cluster()
    keys: dict[str, ObjectKey] = {str(k): k for k in request.pods}
    for uid in set(request.pod_uids):
        for binding in deps.store.list_bindings(pod_uid=uid):
            key = ObjectKey(namespace=binding.namespace, name=binding.pod_name)
            keys.setdefault(str(key), key)
    pods: dict[str, PodInfo] = {}
    for key in keys.values():
        pod = cluster.get_pod(key.namespace, key.name)
        if pod is not None:
            pods[pod.uid] = pod
    for service_key in request.services:
        service = cluster.get_service(service_key.namespace, service_key.name)
        selector = service.selector if service is not None else {}
        for pod in cluster.list_pods(service_key.namespace, selector) if selector else []:
            pods.setdefault(pod.uid, pod)
    return observe_gates(deps, pods.values())


def observe_gates(deps: Deps, pods: Iterable[PodInfo | None]) -> FlipSnapshot:
    """Everything `plan_flip` needs for these Pods, each thing read once (and no more than it looks at)."""
    live = [p for p in pods if p is not None]
    gates, limits = _read_records(deps, live)
    services: dict[str, list[ServiceInfo]] = {}
    for namespace in sorted({p.namespace for p in live if needs_services(p, gates.get(p.uid))}):
        services[namespace] = [s for s in deps.require_cluster().list_services(namespace) if s.is_direct_access]
    deciding = [p for p in live if disposition(p) == "decide"]
    lb_ids = sorted({lb for p in deciding for s in selecting(services, p) if (lb := service_lb_id(s))})
    health: list[TargetHealth] = []
    listeners: dict[str, list[Listener]] = {}
    if lb_ids:
        clb = deps.require_clb()
        health = [item for items in clb.describe_target_health(lb_ids).values() for item in items]
        listeners = {lb_id: _listeners(deps, lb_id) for lb_id in lb_ids}
    return FlipSnapshot(
        now=deps.clock.now(),
        pods=live,
        services=services,
        listeners=listeners,
        health=health,
        gates=gates,
        limits=limits,
    )


def _read_records(deps: Deps, pods: list[PodInfo]) -> tuple[dict[str, str], dict[str, str]]:
    """The recorded gate of fenced and ungated Pods and the use-limit message of the others, in one read."""
    gate_uids = [p.uid for p in pods if disposition(p) in ("fenced", "ungated")]
    limit_uids = [p.uid for p in pods if disposition(p) == "decide"]
    keys = [gate_key(uid) for uid in gate_uids] + [limit_key(uid) for uid in limit_uids]
    values = deps.store.kv_get_many(keys, now=deps.clock.now()) if keys else {}
    gates = {uid: values[gate_key(uid)] for uid in gate_uids if gate_key(uid) in values}
    limits = {uid: values[limit_key(uid)] for uid in limit_uids if limit_key(uid) in values}
    return gates, limits


def _listeners(deps: Deps, lb_id: str) -> list[Listener]:
    """The CLB's listeners, from this container's cache when listed less than LISTENER_CACHE_TTL_S ago."""
    clb, now = deps.require_clb(), deps.clock.monotonic()
    with _listener_lock:
        per_clb = _listener_cache.setdefault(clb, {})
        cached = per_clb.get(lb_id)
    if cached is not None and now - cached[0] < LISTENER_CACHE_TTL_S:
        return cached[1]
    listed = clb.list_listeners(lb_id)
    with _listener_lock:
        per_clb[lb_id] = (now, listed)
    return listed


# ------------------------------------------------------------------------------------------------- apply
def apply_flip_plan(deps: Deps, plan: FlipPlan, rec: Recorder, *, pods: dict[str, PodInfo]) -> None:
    """Carry out `plan` through `rec` (which only records in a dry run): its actions in order, then its
    gate writes, concurrently (each in a copy of this invocation's context, so its log lines keep the ids)."""
    for action in plan.actions:
        _apply(deps, rec, action, pods)
    workers = max(1, min(deps.settings.flip_concurrency, len(plan.writes)))
    if workers > 1 and not rec.dry_run:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="flip") as pool:
            futures = [
                pool.submit(contextvars.copy_context().run, _apply_write, deps, rec, write, pods)
                for write in plan.writes
            ]
            for future in futures:
                future.result(timeout=deps.settings.function_timeout_s)
    else:
        for write in plan.writes:
            _apply_write(deps, rec, write, pods)


def _apply_write(deps: Deps, rec: Recorder, write: GateWrite, pods: dict[str, PodInfo]) -> None:
    """One Pod's patch, then what follows it. A patch that changed nothing (False: the live Pod already
    carries this condition, a concurrent flip set it and announced it, or is gone) is not announced again;
    the records after it are idempotent and still written."""
    announce = True
    for action in write.actions:
        if isinstance(action, EmitEvent) and not announce:
            continue
        patched = _apply(deps, rec, action, pods)
        if isinstance(action, PatchGate):
            announce = patched is not False


def _apply(deps: Deps, rec: Recorder, action: FlipAction, pods: dict[str, PodInfo]) -> bool | None:
    """Carry out one action; a patch answers whether it changed the live Pod (None in a dry run)."""
    store = deps.store
    if isinstance(action, PatchGate):
        condition = action.condition
        patch = partial(deps.require_cluster().set_pod_condition, pods[action.pod_uid], condition)
        return rec.do("set_pod_condition", patch, pod=action.pod, status=condition.status, reason=condition.reason)
    if isinstance(action, RecordGate):
        record = partial(store.kv_set, gate_key(action.pod_uid), action.status, ttl_s=None, now=deps.clock.now())
        rec.do("record_gate", record, pod=action.pod, status=action.status)
    elif isinstance(action, EmitEvent):
        emit(deps, rec, action.regarding, type=action.type, reason=action.reason, message=action.message)
    elif isinstance(action, ScheduleRecheck):
        schedule = partial(schedule_request, store, action.request, action.due_at)
        rec.do("schedule_fail_open", schedule, pod=action.pod, due_at=action.due_at)
    elif isinstance(action, RecordTimeline) and not rec.dry_run:
        _record_gate_true(deps, action)
    # KeepFence: a True gate is not written.
    return None


def _record_gate_true(deps: Deps, action: RecordTimeline) -> None:
    store, at = deps.store, deps.clock.now()
    pod, uid, service = action.pod, action.pod_uid, action.service
    if not has_stage(store, pod, uid, "alive"):
        # The health notification usually recorded `alive` per listener; a poll-only setup learns it here.
        record_stage(store, pod=pod, pod_uid=uid, stage="alive", at=action.alive_at, now=at, service=service)
    record_stage(store, pod=pod, pod_uid=uid, stage="gate_true", at=at, now=at, service=service)
