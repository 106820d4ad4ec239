"""The flip step as data: the snapshot it observes, the typed plan it returns, and `plan_flip`.

`shared/steps/flip.py` observes a `FlipSnapshot` (the Pods, re-read; the direct-access Services of their
namespaces; the listeners and one DescribeTargetHealth of those Services' CLBs; the recorded gate and use-limit
of each Pod), calls `plan_flip` (pure: no I/O, no clock) and hands the `FlipPlan` to one applier; a dry run
records the plan without executing it and returns it, so `clb-direct plan` prints exactly what the flip would
do. The rules (architecture rules 1, 8 and 11): a gate already True is a fence, kept whatever the Services look
like now; every other gated Pod is decided by `shared.domain.gate.decide_gate`, and only a changed condition is
patched, with its Event, its `gate:<uid>` record on a transition and (True) its timeline mark; a False gate
with fail-open on gets a re-check at its deadline; a selected Pod admitted without the gate is recorded
`ungated` and reported once on its Services (`ReadinessGateMissing`). The plan's `actions` run in order,
then its `writes` (one per Pod whose condition changes), which may go out concurrently.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.domain.backends import resolve_target_port, selects
from shared.domain.batch import EmitEvent, pod_ref, service_lb_id, service_ref
from shared.domain.gate import (
    REASON_FAIL_OPEN,
    REASON_PORT_CONFLICT,
    REASON_RELEASED,
    GateDecision,
    GateStatus,
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
    PodCondition,
    PodInfo,
    ServiceInfo,
    StepRequest,
    TargetHealth,
)
from wire_time import parse_rfc3339

REASON_GATE_MISSING = "ReadinessGateMissing"
_EVENT_REASONS = {"True": "ReadinessGateReady", "False": "ReadinessGateNotReady"}

RecordedGate = Literal["True", "False", "ungated"]
Disposition = Literal["ungated", "terminating", "fenced", "decide"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FlipSnapshot(_Frozen):
    """What one flip observed, read once before planning."""

    now: float
    pods: list[PodInfo] = Field(default_factory=list, description="the Pods to flip, as read live")
    services: dict[str, list[ServiceInfo]] = Field(
        default_factory=dict, description="direct-access Services per namespace, where a Pod needs them"
    )
    listeners: dict[str, list[Listener]] = Field(default_factory=dict, description="per CLB of those Services")
    health: list[TargetHealth] = Field(default_factory=list, description="DescribeTargetHealth of those CLBs")
    gates: dict[str, str] = Field(default_factory=dict, description="recorded gate per Pod UID (fences, ungated)")
    limits: dict[str, str] = Field(default_factory=dict, description="recorded use-limit message per Pod UID")


class KeepFence(_Frozen):
    """A gate already True: no write (rule 11)."""

    kind: Literal["keep_fence"] = "keep_fence"
    pod: str
    pod_uid: str
    reason: str


class RecordGate(_Frozen):
    """`gate:<pod uid>` in the store, which the health poll and the bind batches read."""

    kind: Literal["record_gate"] = "record_gate"
    pod: str
    pod_uid: str
    status: RecordedGate
    reason: str


class PatchGate(_Frozen):
    """The gate condition on `pods/status` (the adapter makes the Pod UID a precondition)."""

    kind: Literal["patch_gate"] = "patch_gate"
    pod: str
    pod_uid: str
    condition: PodCondition
    reason: str


class RecordTimeline(_Frozen):
    """`gate_true` on the Pod's timeline, and `alive` (at `alive_at`) when no health notification recorded it."""

    kind: Literal["record_timeline"] = "record_timeline"
    pod: str
    pod_uid: str
    service: str
    alive_at: float
    reason: str


class ScheduleRecheck(_Frozen):
    """A flip of the Pod at its fail-open deadline, in the due-set (no later event is needed to release it)."""

    kind: Literal["schedule_fail_open"] = "schedule_fail_open"
    pod: str
    request: StepRequest
    due_at: float
    reason: str


FlipAction = Annotated[
    KeepFence | RecordGate | PatchGate | RecordTimeline | ScheduleRecheck | EmitEvent, Field(discriminator="kind")
]


class GateWrite(_Frozen):
    """One Pod's condition patch and what follows it, in order; its Event only if the patch changed the Pod."""

    pod: str
    pod_uid: str
    actions: list[FlipAction]


class PodGate(_Frozen):
    """The flip's answer for one Pod considered."""

    pod: str
    status: GateStatus
    reason: str | None
    message: str | None
    changed: bool
    fenced: bool = False

    def summary(self) -> dict[str, Any]:
        found = self.model_dump(exclude={"fenced"})
        return {**found, "fenced": True} if self.fenced else found


class FlipPlan(BaseModel):
    """Everything one flip will do: `actions` in order, then `writes` (concurrently), and its answer per Pod."""

    model_config = ConfigDict(extra="forbid")

    actions: list[FlipAction] = Field(default_factory=list)
    writes: list[GateWrite] = Field(default_factory=list)
    outcome: list[PodGate] = Field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"pods": [p.summary() for p in self.outcome], "changed": sum(1 for p in self.outcome if p.changed)}


# ------------------------------------------------------------------------------------------- observing
def disposition(pod: PodInfo) -> Disposition:
    """What a flip does with a Pod: report it ungated, leave it (terminating), keep its fence, or decide."""
    if GATE_CONDITION_TYPE not in pod.readiness_gates:
        return "ungated"
    if pod.deletion_timestamp is not None:
        return "terminating"  # its readiness no longer gates a rollout; unbind drains it
    current = pod.condition(GATE_CONDITION_TYPE)
    return "fenced" if current is not None and current.status == "True" else "decide"


def needs_services(pod: PodInfo, recorded_gate: str | None) -> bool:
    """Whether planning this Pod looks at the Services selecting it (observe lists only those namespaces)."""
    kind = disposition(pod)
    if kind == "ungated":
        return recorded_gate != "ungated" and not pod.host_network and pod.deletion_timestamp is None
    return kind == "decide"


def selecting(services: Mapping[str, Sequence[ServiceInfo]], pod: PodInfo) -> list[ServiceInfo]:
    """The direct-access Services of the Pod's namespace whose selector matches it."""
    return [s for s in services.get(pod.namespace, ()) if selects(s.selector, pod.labels)]


def epoch_of(timestamp: str | None) -> float | None:
    if not timestamp:
        return None
    try:
        return parse_rfc3339(timestamp).timestamp()
    except ValueError:
        return None


def rfc3339_at(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------------------------------- planning
def plan_flip(snap: FlipSnapshot) -> FlipPlan:
    """Fences kept, ungated Pods reported, every other gated Pod decided; a write only where it changes."""
    plan = FlipPlan()
    health = {(h.listener_id, h.ip, h.port): h for h in snap.health}
    ungated: list[PodInfo] = []
    decided: list[tuple[PodInfo, list[ServiceInfo], GateDecision]] = []
    for pod in snap.pods:
        kind, current = disposition(pod), pod.condition(GATE_CONDITION_TYPE)
        if kind == "ungated":
            ungated.append(pod)
        elif kind == "fenced" and current is not None:
            _plan_fence(plan, snap, pod, current)
        elif kind == "decide":
            services = selecting(snap.services, pod)
            decided.append((pod, services, _decide(snap, health, pod, services)))
    _plan_ungated(plan, snap, ungated)
    for pod, _, decision in decided:
        _plan_fail_open(plan, snap, pod, decision)
    for pod, services, decision in decided:
        _plan_gate(plan, snap, pod, services, decision)
    return plan


def _plan_fence(plan: FlipPlan, snap: FlipSnapshot, pod: PodInfo, current: PodCondition) -> None:
    """A True gate stays True; only a missing `gate:<uid>` record (a crash after the patch) is repaired."""
    name = str(pod.key)
    why = "the gate is True: a fence, left as it is whatever the Services look like now (rule 11)"
    plan.actions.append(KeepFence(pod=name, pod_uid=pod.uid, reason=why))
    if snap.gates.get(pod.uid) != "True":
        why = "the gate is True but not recorded (a crash after the patch): the health poll must see it settled"
        plan.actions.append(RecordGate(pod=name, pod_uid=pod.uid, status="True", reason=why))
    plan.outcome.append(
        PodGate(pod=name, status="True", reason=current.reason, message=current.message, changed=False, fenced=True)
    )


def _plan_gate(
    plan: FlipPlan, snap: FlipSnapshot, pod: PodInfo, services: list[ServiceInfo], decision: GateDecision
) -> None:
    """The Pod's answer, and its write when the condition differs from the decision (status, reason, message)."""
    current = pod.condition(GATE_CONDITION_TYPE)
    wanted = (decision.status, decision.reason, decision.message)
    changed = current is None or (current.status, current.reason, current.message) != wanted
    if changed:
        plan.writes.append(_gate_write(snap, pod, services, decision, current))
    plan.outcome.append(
        PodGate(
            pod=str(pod.key), status=decision.status, reason=decision.reason, message=decision.message, changed=changed
        )
    )


def _service_gate(
    snap: FlipSnapshot, health: Mapping[tuple[str, str, int], TargetHealth], service: ServiceInfo, pod: PodInfo
) -> ServiceGate:
    """The Pod's standing behind one Service: per listener, its target's health (or why it has none)."""
    fail_open, _ = parse_fail_open(service.annotations.get(FAIL_OPEN_ANNOTATION))
    lb_id = service_lb_id(service)
    if not lb_id:
        return ServiceGate(str(service.key), problem="CLB not created yet", fail_open_s=fail_open)
    gates: list[ListenerGate] = []
    conflicts: list[str] = []
    actual = snap.listeners.get(lb_id, [])
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
        gates.append(ListenerGate(name, health_state(health.get((listener.listener_id, pod.ip, target_port)))))
    return ServiceGate(str(service.key), gates, fail_open_s=fail_open, conflicts=tuple(conflicts))


def _decide(
    snap: FlipSnapshot,
    health: Mapping[tuple[str, str, int], TargetHealth],
    pod: PodInfo,
    services: list[ServiceInfo],
) -> GateDecision:
    created = epoch_of(pod.creation_timestamp)
    return decide_gate(
        [_service_gate(snap, health, s, pod) for s in services],
        pod_problem=snap.limits.get(pod.uid) if services else None,
        pod_age_s=None if created is None else snap.now - created,
    )


def _plan_ungated(plan: FlipPlan, snap: FlipSnapshot, pods: Iterable[PodInfo]) -> None:
    """Pods without our gate are recorded `ungated` (the health poll and bind batches stop asking for
    their flip); the first time, each selecting Service gets one Warning naming them and what to do.

    Such a Pod was admitted before its Service reached the selector index (created in the same second
    as the Service, or before direct access was turned on) or while the webhook was down under `Ignore`.
    A readiness gate cannot be added to an existing Pod, so only re-creating it helps. hostNetwork Pods
    never get the gate by design and terminating ones no longer matter: neither is reported.
    """
    new = [p for p in pods if snap.gates.get(p.uid) != "ungated"]
    by_service: dict[str, tuple[ServiceInfo, list[PodInfo]]] = {}
    for pod in new:
        if needs_services(pod, snap.gates.get(pod.uid)):
            for service in selecting(snap.services, pod):
                by_service.setdefault(str(service.key), (service, []))[1].append(pod)
    for service, missing in by_service.values():
        message = _gateless_message(missing)
        event = EmitEvent(regarding=service_ref(service), type="Warning", reason=REASON_GATE_MISSING, message=message)
        plan.actions.append(event)
    why = "admitted without the readiness gate: the health poll and bind batches stop asking for its flip"
    for pod in new:
        plan.actions.append(RecordGate(pod=str(pod.key), pod_uid=pod.uid, status="ungated", reason=why))


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


def _plan_fail_open(plan: FlipPlan, snap: FlipSnapshot, pod: PodInfo, decision: GateDecision) -> None:
    """A False gate with fail-open on gets a flip at its deadline (the due-set), whatever else happens.

    Re-scheduling the same Pod moves its one item, so every False flip may plan this; a flip that
    finds the gate True by then (healthy, or released) simply keeps the fence.
    """
    age_limit = decision.fail_open_at_age_s
    created = epoch_of(pod.creation_timestamp)
    if decision.status != "False" or age_limit is None or created is None:
        return
    request = StepRequest(step="flip", pods=[pod.key], reason=f"fail-open deadline ({age_limit:g}s after creation)")
    why = f"fail-open releases the gate {age_limit:g}s after the Pod's creation unless it is healthy by then"
    plan.actions.append(
        ScheduleRecheck(pod=str(pod.key), request=request, due_at=max(created + age_limit, snap.now), reason=why)
    )


def _gate_write(
    snap: FlipSnapshot,
    pod: PodInfo,
    services: list[ServiceInfo],
    decision: GateDecision,
    current: PodCondition | None,
) -> GateWrite:
    """Patch the condition, then the transition's Event, the gate record and (True) its timeline."""
    name, uid = str(pod.key), pod.uid
    transition = current is None or current.status != decision.status
    condition = PodCondition(
        type=GATE_CONDITION_TYPE,
        status=decision.status,
        reason=decision.reason,
        message=decision.message,
        last_transition_time=rfc3339_at(snap.now) if current is None or transition else current.last_transition_time,
    )
    actions: list[FlipAction] = [
        PatchGate(pod=name, pod_uid=uid, condition=condition, reason=_change(current, decision))
    ]
    event = _event(pod, decision, transition, reason_changed=current is not None and current.reason != decision.reason)
    if event is not None:
        actions.append(event)
    if transition:
        why = "a transition: the health poll and the bind batches read the gate's state from the store"
        actions.append(RecordGate(pod=name, pod_uid=uid, status=decision.status, reason=why))
    if decision.status == "True" and decision.reason != REASON_RELEASED:
        why = "the gate went True: the rollout's timeline gets its mark"
        service = str(services[0].key) if services else ""
        actions.append(RecordTimeline(pod=name, pod_uid=uid, service=service, alive_at=snap.now, reason=why))
    return GateWrite(pod=name, pod_uid=uid, actions=actions)


def _change(current: PodCondition | None, decision: GateDecision) -> str:
    if current is None:
        return f"the Pod has no gate condition yet: {decision.status} ({decision.reason})"
    if current.status != decision.status:
        return f"the gate goes {current.status} -> {decision.status} ({decision.reason})"
    if current.reason != decision.reason:
        return f"the gate stays {decision.status}, its reason changes {current.reason} -> {decision.reason}"
    return f"the gate stays {decision.status}, its message changes"


def _event(pod: PodInfo, decision: GateDecision, transition: bool, *, reason_changed: bool) -> EmitEvent | None:
    """A Warning for fail-open (on the transition) and for a port conflict, else a Normal transition Event."""
    if decision.warning:
        if not transition:
            return None
        return EmitEvent(regarding=pod_ref(pod), type="Warning", reason=REASON_FAIL_OPEN, message=decision.warning)
    if not (transition or reason_changed):
        return None
    if decision.reason == REASON_PORT_CONFLICT:
        return EmitEvent(regarding=pod_ref(pod), type="Warning", reason=REASON_PORT_CONFLICT, message=decision.message)
    return EmitEvent(
        regarding=pod_ref(pod), type="Normal", reason=_EVENT_REASONS[decision.status], message=decision.message
    )
