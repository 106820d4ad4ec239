"""The flip step: set each Pod's readiness-gate condition from live CLB health (rules 1 and 8).

Called through `run_step` for StepRequest(step="flip") (from bind, the health function, reconcile) and
directly by the service step's teardown to release gates. Per Pod it re-reads the Pod and the
direct-access Services selecting it, reads DescribeTargetHealth once for all their CLBs, decides with
`domain.gate.decide_gate`, patches `pods/status` (UID precondition in the adapter) only when something
changed, records `gate:<pod_uid>` for the health poller and emits one Event per transition.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shared.deps import Deps
from shared.domain.backends import resolve_target_port
from shared.domain.gate import REASON_FAIL_OPEN, ListenerGate, ServiceGate, decide_gate, health_state, parse_fail_open
from shared.domain.listeners import listeners_for_service
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
from shared.steps.common import (
    Recorder,
    emit,
    gate_key,
    iso_now,
    limit_key,
    parse_time,
    pod_ref,
    selecting_services,
    service_lb_id,
)

_EVENT_REASONS = {"True": "ReadinessGateReady", "False": "ReadinessGateNotReady"}


class _HealthView:
    """Per-invocation cache: listeners per CLB and one DescribeTargetHealth for every CLB involved."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._listeners: dict[str, list[Listener]] = {}
        self._health: dict[tuple[str, str, int], TargetHealth] = {}
        self._loaded: set[str] = set()

    def listeners(self, lb_id: str) -> list[Listener]:
        if lb_id not in self._listeners:
            self._listeners[lb_id] = self._deps.require_clb().list_listeners(lb_id)
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
    for port, listener in listeners_for_service(service, view.listeners(lb_id)):
        name = f"{port.protocol}:{port.port}"
        if listener is None:
            gates.append(ListenerGate(name, "no listener yet"))
            continue
        name = f"{name} ({listener.listener_id})"
        target_port = resolve_target_port(port, pod)
        if target_port is None or not pod.ip:
            gates.append(ListenerGate(name, "not registered"))
            continue
        gates.append(ListenerGate(name, health_state(view.health(listener.listener_id, pod.ip, target_port))))
    return ServiceGate(str(service.key), gates, fail_open_s=fail_open)


def flip_pods(deps: Deps, pods: Iterable[PodInfo | None], rec: Recorder) -> list[dict[str, Any]]:
    """Decide and write the gate of each Pod; returns one outcome dict per Pod considered."""
    cache: dict[str, list[ServiceInfo]] = {}
    view = _HealthView(deps)
    live = [p for p in pods if p is not None]
    todo: list[tuple[PodInfo, list[ServiceInfo]]] = []
    for pod in live:
        if GATE_CONDITION_TYPE not in pod.readiness_gates:
            continue  # no gate to drive (created before the webhook, or hostNetwork)
        if pod.deletion_timestamp is not None:
            continue  # a terminating Pod's readiness no longer gates a rollout; unbind drains it
        todo.append((pod, selecting_services(deps, pod, cache)))
    view.preload(lb for _, services in todo for s in services if (lb := service_lb_id(s)))
    return [_flip_one(deps, view, pod, services, rec) for pod, services in todo]


def _flip_one(
    deps: Deps, view: _HealthView, pod: PodInfo, services: list[ServiceInfo], rec: Recorder
) -> dict[str, Any]:
    now = deps.clock.now()
    created = parse_time(pod.creation_timestamp)
    decision = decide_gate(
        [_service_gate(view, s, pod) for s in services],
        pod_problem=deps.store.kv_get(limit_key(pod.uid), now=now) if services else None,
        pod_age_s=None if created is None else now - created,
    )
    current = pod.condition(GATE_CONDITION_TYPE)
    outcome: dict[str, Any] = {
        "pod": str(pod.key),
        "status": decision.status,
        "reason": decision.reason,
        "message": decision.message,
    }
    unchanged = current is not None and (current.status, current.reason, current.message) == (
        decision.status,
        decision.reason,
        decision.message,
    )
    if not unchanged:
        transition = current is None or current.status != decision.status
        condition = PodCondition(
            type=GATE_CONDITION_TYPE,
            status=decision.status,
            reason=decision.reason,
            message=decision.message,
            last_transition_time=iso_now(now) if transition or current is None else current.last_transition_time,
        )
        cluster = deps.require_cluster()
        rec.do(
            "set_pod_condition",
            lambda: cluster.set_pod_condition(pod, condition),
            pod=str(pod.key),
            status=decision.status,
            reason=decision.reason,
        )
        if decision.warning:
            if transition:
                emit(deps, rec, pod_ref(pod), type="Warning", reason=REASON_FAIL_OPEN, message=decision.warning)
        elif transition or (current is not None and current.reason != decision.reason):
            emit(
                deps, rec, pod_ref(pod), type="Normal", reason=_EVENT_REASONS[decision.status], message=decision.message
            )
    outcome["changed"] = not unchanged
    rec.do(
        "record_gate",
        lambda: deps.store.kv_set(gate_key(pod.uid), decision.status, ttl_s=None, now=now),
        pod=str(pod.key),
        status=decision.status,
    )
    return outcome


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
