"""The flip step: set each Pod's readiness-gate condition from live CLB health (rules 1, 8 and 11).

Called through `run_step` for StepRequest(step="flip") (from bind, the health function, reconcile) and
directly by the service step's teardown to release gates. Per Pod it re-reads the Pod; a gate already
True is a fence and is left alone (adding, editing or moving a Service never takes a serving Pod
NotReady). For the others it lists the direct-access Services selecting it, reads DescribeTargetHealth
once for all their CLBs, decides with `domain.gate.decide_gate`, and only for Pods whose condition
changes patches `pods/status` (UID precondition in the adapter), records `gate:<pod_uid>` for the health
poller on a transition and emits one Event; those writes go out concurrently, at most
`Settings.flip_concurrency` at a time. Gate True is recorded on the Pod's timeline (`shared.timeline`).
A selected Pod admitted without the gate is recorded `ungated` and reported once on its Services
(`ReadinessGateMissing`), since only re-creating it can add the gate.
"""

from __future__ import annotations

import contextvars
import threading
import weakref
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from shared.deps import Deps
from shared.domain.backends import resolve_target_port
from shared.domain.gate import (
    REASON_FAIL_OPEN,
    REASON_PORT_CONFLICT,
    REASON_RELEASED,
    GateDecision,
    ListenerGate,
    ServiceGate,
    decide_gate,
    health_state,
    parse_fail_open,
)
from shared.domain.listeners import foreign_listeners, listeners_for_service, port_conflict_text
from shared.domain.models import (
    FAIL_OPEN_ANNOTATION,
    GATE_CONDITION_TYPE,
    Listener,
    ObjectKey,
    PodCondition,
    PodInfo,
    ServiceInfo,
    StepRequest,
    TargetHealth,
)
from shared.keys import gate_key, limit_key
from shared.schedule import schedule_request
from shared.steps.common import (
    Recorder,
    emit,
    iso_now,
    parse_time,
    pod_ref,
    selecting_services,
    service_lb_id,
    service_ref,
)
from shared.timeline import has_stage, record_stage

_EVENT_REASONS = {"True": "ReadinessGateReady", "False": "ReadinessGateNotReady"}
REASON_GATE_MISSING = "ReadinessGateMissing"


# Listeners change only when a Service's ports or TkeServiceConfig do; a warm container reuses what it
# listed for a few seconds, so per-Pod flips cost one DescribeListeners per CLB per TTL, not one each
# (the read limit is 20/s). A stale list errs towards "not healthy yet", never towards True: a listener
# missing from it counts as pending, a removed one has no health.
LISTENER_CACHE_TTL_S = 10.0
_listener_cache: weakref.WeakKeyDictionary[object, dict[str, tuple[float, list[Listener]]]] = (
    weakref.WeakKeyDictionary()
)
_listener_lock = threading.Lock()


class _HealthView:
    """Per-invocation cache: listeners per CLB and one DescribeTargetHealth for every CLB involved."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._listeners: dict[str, list[Listener]] = {}
        self._health: dict[tuple[str, str, int], TargetHealth] = {}
        self._loaded: set[str] = set()

    def listeners(self, lb_id: str) -> list[Listener]:
        if lb_id not in self._listeners:
            clb, now = self._deps.require_clb(), self._deps.clock.monotonic()
            with _listener_lock:
                per_clb = _listener_cache.setdefault(clb, {})
                cached = per_clb.get(lb_id)
            if cached is not None and now - cached[0] < LISTENER_CACHE_TTL_S:
                self._listeners[lb_id] = cached[1]
            else:
                self._listeners[lb_id] = clb.list_listeners(lb_id)
                with _listener_lock:
                    per_clb[lb_id] = (now, self._listeners[lb_id])
        return self._listeners[lb_id]

    def preload(self, lb_ids: Iterable[str]) -> None:
        wanted = sorted(set(lb_ids) - self._loaded)
        if not wanted:
            return
        for items in self._deps.require_clb().describe_target_health(wanted).values():
            for item in items:
                self._health[(item.listener_id, item.ip, item.port)] = item
        self._loaded.update(wanted)

    def health(self, listener_id: str, ip: str, port: int) -> TargetHealth | None:
        return self._health.get((listener_id, ip, port))


def _service_gate(view: _HealthView, service: ServiceInfo, pod: PodInfo) -> ServiceGate:
    fail_open, _ = parse_fail_open(service.annotations.get(FAIL_OPEN_ANNOTATION))
    lb_id = service_lb_id(service)
    if not lb_id:
        return ServiceGate(str(service.key), problem="CLB not created yet", fail_open_s=fail_open)
    gates: list[ListenerGate] = []
    conflicts: list[str] = []
    actual = view.listeners(lb_id)
    foreign = foreign_listeners(service, actual)
    for port, listener in listeners_for_service(service, actual):
        name = f"{port.protocol}:{port.port}"
        held_by = foreign.get((port.protocol, port.port))
        if listener is None and held_by is not None:
            conflicts.append(port_conflict_text(port.protocol, port.port, lb_id, held_by))
            continue
        if listener is None:
            gates.append(ListenerGate(name, "no listener yet"))
            continue
        name = f"{name} ({listener.listener_id})"
        target_port = resolve_target_port(port, pod)
        if target_port is None or not pod.ip:
            gates.append(ListenerGate(name, "not registered"))
            continue
        gates.append(ListenerGate(name, health_state(view.health(listener.listener_id, pod.ip, target_port))))
    return ServiceGate(str(service.key), gates, fail_open_s=fail_open, conflicts=tuple(conflicts))


def flip_pods(deps: Deps, pods: Iterable[PodInfo | None], rec: Recorder) -> list[dict[str, Any]]:
    """Decide and write the gate of each Pod; returns one outcome dict per Pod considered.

    A gate already True is a fence (rule 11): it is left as it is, and not re-recorded, whatever the
    Services look like now. Only the remaining Pods cost a health read; their writes go out concurrently.
    """
    cache: dict[str, list[ServiceInfo]] = {}
    view = _HealthView(deps)
    live = [p for p in pods if p is not None]
    todo: list[tuple[PodInfo, list[ServiceInfo]]] = []
    fenced: list[dict[str, Any]] = []
    gateless: list[PodInfo] = []
    for pod in live:
        if GATE_CONDITION_TYPE not in pod.readiness_gates:
            gateless.append(pod)
            continue
        if pod.deletion_timestamp is not None:
            continue  # a terminating Pod's readiness no longer gates a rollout; unbind drains it
        current = pod.condition(GATE_CONDITION_TYPE)
        if current is not None and current.status == "True":
            fenced.append(_keep_fence(deps, pod, current, rec))
            continue
        todo.append((pod, selecting_services(deps, pod, cache)))
    _record_gateless(deps, gateless, cache, rec)
    view.preload(lb for _, services in todo for s in services if (lb := service_lb_id(s)))
    planned = [_plan_one(deps, view, pod, services) for pod, services in todo]
    for p in planned:
        _schedule_fail_open(deps, p, rec)
    writes = [p for p in planned if p.changed]
    workers = max(1, min(deps.settings.flip_concurrency, len(writes)))
    if workers > 1 and not rec.dry_run:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="flip") as pool:
            # Each write runs in a copy of this invocation's context so its log lines keep the ids.
            futures = [pool.submit(contextvars.copy_context().run, _apply_one, deps, p, rec) for p in writes]
            for future in futures:
                future.result(timeout=deps.settings.function_timeout_s)
    else:
        for p in writes:
            _apply_one(deps, p, rec)
    return fenced + [p.outcome() for p in planned]


def _record_gateless(deps: Deps, pods: list[PodInfo], cache: dict[str, list[ServiceInfo]], rec: Recorder) -> None:
    """Pods without our gate are recorded `ungated` (the health poll and bind batches stop asking for
    their flip); the first time, each selecting Service gets one Warning naming them and what to do.

    Such a Pod was admitted before its Service reached the selector index (created in the same second
    as the Service, or before direct access was turned on) or while the webhook was down under `Ignore`.
    A readiness gate cannot be added to an existing Pod, so only re-creating it helps. hostNetwork Pods
    never get the gate by design and terminating ones no longer matter: neither is reported.
    """
    now = deps.clock.now()
    new = [p for p in pods if deps.store.kv_get(gate_key(p.uid), now=now) != "ungated"]
    by_service: dict[str, tuple[ServiceInfo, list[PodInfo]]] = {}
    for pod in new:
        if pod.host_network or pod.deletion_timestamp is not None:
            continue
        for svc in selecting_services(deps, pod, cache):
            by_service.setdefault(str(svc.key), (svc, []))[1].append(pod)
    for svc, missing in by_service.values():
        message = _gateless_message(missing)
        emit(deps, rec, service_ref(svc), type="Warning", reason=REASON_GATE_MISSING, message=message)
    for pod in new:
        _record_once(deps, pod, "ungated", rec)


def _gateless_message(pods: list[PodInfo]) -> str:
    names = ", ".join(str(p.key) for p in pods[:5]) + (f" and {len(pods) - 5} more" if len(pods) > 5 else "")
    owners = sorted({f"{p.owner_kind} {p.owner_name}" for p in pods if p.owner_kind and p.owner_name})
    return (
        f"{len(pods)} selected Pod(s) were admitted without the readiness gate {GATE_CONDITION_TYPE}: {names}. "
        "They are registered and served, but their readiness does not wait for CLB health, so a rollout can "
        "outpace the CLB. They were created before clb-direct indexed this Service (e.g. in the same second "
        "as the Service) or while the admission webhook was unavailable. A gate cannot be added to an "
        "existing Pod: re-create them (kubectl rollout restart"
        + (f" the workload of {', '.join(owners)}" if owners else "")
        + "), and create the Service before its workload"
    )


def _record_once(deps: Deps, pod: PodInfo, status: str, rec: Recorder) -> None:
    now = deps.clock.now()
    if deps.store.kv_get(gate_key(pod.uid), now=now) != status:
        rec.do(
            "record_gate",
            lambda: deps.store.kv_set(gate_key(pod.uid), status, ttl_s=None, now=now),
            pod=str(pod.key),
            status=status,
        )


def _keep_fence(deps: Deps, pod: PodInfo, current: PodCondition, rec: Recorder) -> dict[str, Any]:
    """A True gate stays True; only a missing `gate:<uid>` record (a crash after the patch) is repaired."""
    _record_once(deps, pod, "True", rec)
    return {
        "pod": str(pod.key),
        "status": "True",
        "reason": current.reason,
        "message": current.message,
        "changed": False,
        "fenced": True,
    }


@dataclass
class _Planned:
    pod: PodInfo
    services: list[ServiceInfo]
    decision: GateDecision
    current: PodCondition | None
    now: float

    @property
    def changed(self) -> bool:
        c = self.current
        return c is None or (c.status, c.reason, c.message) != (
            self.decision.status,
            self.decision.reason,
            self.decision.message,
        )

    def outcome(self) -> dict[str, Any]:
        d = self.decision
        return {
            "pod": str(self.pod.key),
            "status": d.status,
            "reason": d.reason,
            "message": d.message,
            "changed": self.changed,
        }


def _plan_one(deps: Deps, view: _HealthView, pod: PodInfo, services: list[ServiceInfo]) -> _Planned:
    now = deps.clock.now()
    created = parse_time(pod.creation_timestamp)
    decision = decide_gate(
        [_service_gate(view, s, pod) for s in services],
        pod_problem=deps.store.kv_get(limit_key(pod.uid), now=now) if services else None,
        pod_age_s=None if created is None else now - created,
    )
    return _Planned(pod, services, decision, pod.condition(GATE_CONDITION_TYPE), now)


def _schedule_fail_open(deps: Deps, planned: _Planned, rec: Recorder) -> None:
    """A False gate with fail-open on gets a flip at its deadline (the due-set), whatever else happens.

    Re-scheduling the same Pod moves its one item, so every False flip may call this; a flip that
    finds the gate True by then (healthy, or released) simply keeps the fence.
    """
    age_limit = planned.decision.fail_open_at_age_s
    created = parse_time(planned.pod.creation_timestamp)
    if planned.decision.status != "False" or age_limit is None or created is None:
        return
    due_at = max(created + age_limit, planned.now)
    request = StepRequest(
        step="flip", pods=[planned.pod.key], reason=f"fail-open deadline ({age_limit:g}s after creation)"
    )
    rec.do(
        "schedule_fail_open",
        lambda: schedule_request(deps.store, request, due_at),
        pod=str(planned.pod.key),
        due_at=due_at,
    )


def _apply_one(deps: Deps, planned: _Planned, rec: Recorder) -> None:
    """Patch the condition, emit the transition's Event, record the gate and (True) its timeline."""
    pod, decision, current, now = planned.pod, planned.decision, planned.current, planned.now
    transition = current is None or current.status != decision.status
    condition = PodCondition(
        type=GATE_CONDITION_TYPE,
        status=decision.status,
        reason=decision.reason,
        message=decision.message,
        last_transition_time=iso_now(now) if transition or current is None else current.last_transition_time,
    )
    cluster = deps.require_cluster()
    changed = rec.do(
        "set_pod_condition",
        lambda: cluster.set_pod_condition(pod, condition),
        pod=str(pod.key),
        status=decision.status,
        reason=decision.reason,
    )
    # False: the live Pod already carries this condition (a concurrent flip set it and announced it) or is
    # gone. The records below are idempotent and still written; the Event is not repeated.
    if changed is not False:
        _announce(deps, rec, planned, transition)
    if transition or current is None:
        rec.do(
            "record_gate",
            lambda: deps.store.kv_set(gate_key(pod.uid), decision.status, ttl_s=None, now=now),
            pod=str(pod.key),
            status=decision.status,
        )
    if decision.status == "True" and decision.reason != REASON_RELEASED and not rec.dry_run:
        _record_gate_true(deps, pod, planned.services, now)


def _announce(deps: Deps, rec: Recorder, planned: _Planned, transition: bool) -> None:
    """The one Event of a gate change: a Warning for fail-open or a port conflict, else Normal."""
    pod, decision, current = planned.pod, planned.decision, planned.current
    reason_changed = current is not None and current.reason != decision.reason
    if decision.warning:
        if transition:
            emit(deps, rec, pod_ref(pod), type="Warning", reason=REASON_FAIL_OPEN, message=decision.warning)
    elif decision.reason == REASON_PORT_CONFLICT:
        if transition or reason_changed:
            emit(deps, rec, pod_ref(pod), type="Warning", reason=REASON_PORT_CONFLICT, message=decision.message)
    elif transition or reason_changed:
        emit(deps, rec, pod_ref(pod), type="Normal", reason=_EVENT_REASONS[decision.status], message=decision.message)


def _record_gate_true(deps: Deps, pod: PodInfo, services: list[ServiceInfo], now: float) -> None:
    service = str(services[0].key) if services else ""
    pod_name, store, at = str(pod.key), deps.store, deps.clock.now()
    if not has_stage(store, pod_name, pod.uid, "alive"):
        # The health notification usually recorded `alive` per listener; a poll-only setup learns it here.
        record_stage(store, pod=pod_name, pod_uid=pod.uid, stage="alive", at=now, now=at, service=service)
    record_stage(store, pod=pod_name, pod_uid=pod.uid, stage="gate_true", at=at, now=at, service=service)


def run_flip(deps: Deps, request: StepRequest, rec: Recorder) -> dict[str, Any]:
    """Flip the Pods named (by key or UID) and every Pod selected by the Services named."""
    cluster = deps.require_cluster()
    keys: dict[str, ObjectKey] = {str(k): k for k in request.pods}
    uids = set(request.pod_uids)
    for uid in uids:
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
    outcome = flip_pods(deps, pods.values(), rec)
    return {"pods": outcome, "changed": sum(1 for o in outcome if o["changed"])}
