"""The flip planner is pure: a snapshot in, a typed plan out. A True gate is a fence; a healthy Pod goes True,
one not healthy yet False with what is pending; fail-open schedules its re-check or releases with a Warning;
a port held by a foreign listener says so; an unchanged condition costs no write; a Pod admitted without the
gate is reported once on its Services."""

from __future__ import annotations

from typing import Any

from shared.domain.batch import EmitEvent
from shared.domain.flip_plan import (
    FlipPlan,
    FlipSnapshot,
    KeepFence,
    PatchGate,
    RecordGate,
    RecordTimeline,
    ScheduleRecheck,
    needs_services,
    plan_flip,
    rfc3339_at,
)
from shared.domain.gate import REASON_FAIL_OPEN, REASON_NOT_READY, REASON_PORT_CONFLICT, REASON_RELEASED, GateStatus
from shared.domain.listeners import listener_name
from shared.domain.models import (
    DIRECT_ACCESS_ANNOTATION,
    EXISTED_LB_ANNOTATION,
    FAIL_OPEN_ANNOTATION,
    GATE_CONDITION_TYPE,
    GATE_READY_REASON,
    LB_ID_ANNOTATION,
    HealthDetail,
    Listener,
    PodCondition,
    PodInfo,
    ServiceInfo,
    ServicePort,
    TargetHealth,
)
from tests.support.models import serving_pod

CREATED = 1_700_000_000.0  # 2023-11-14T22:13:20Z
NOW = CREATED + 100.0
LISTENER = Listener(listener_id="l80", port=80, name=listener_name("ns", "web", "TCP", 80))


def service(**annotations: str) -> ServiceInfo:
    return ServiceInfo(
        namespace="ns",
        name="web",
        uid="s1",
        type="LoadBalancer",
        annotations={DIRECT_ACCESS_ANNOTATION: "true", LB_ID_ANNOTATION: "lb-1", **annotations},
        selector={"app": "web"},
        ports=[ServicePort(port=80, target_port="http")],
    )


def pod(name: str = "web-1", ip: str = "10.0.0.1", *, gate: PodCondition | None = None, **kw: Any) -> PodInfo:
    flip_defaults: dict[str, Any] = {
        "creation_timestamp": "2023-11-14T22:13:20Z",
        "readiness_gates": [GATE_CONDITION_TYPE],
        "conditions": [gate] if gate else [],
        "owner_kind": "ReplicaSet",
        "owner_name": "web-rs1",
    }
    return serving_pod(name, ip, **{**flip_defaults, **kw})


def condition(status: GateStatus, reason: str, message: str, at: str = "2023-11-14T22:13:30Z") -> PodCondition:
    return PodCondition(
        type=GATE_CONDITION_TYPE, status=status, reason=reason, message=message, last_transition_time=at
    )


def health(ip: str = "10.0.0.1", detail: HealthDetail = "Alive") -> TargetHealth:
    return TargetHealth(listener_id="l80", ip=ip, port=8080, healthy=detail == "Alive", detail=detail)


def snapshot(*pods: PodInfo, services: list[ServiceInfo] | None = None, **kw: Any) -> FlipSnapshot:
    values: dict[str, Any] = {
        "now": NOW,
        "pods": list(pods),
        "services": {"ns": [service()] if services is None else services},
        "listeners": {"lb-1": [LISTENER]},
    }
    values.update(kw)
    return FlipSnapshot(**values)


def write_kinds(plan: FlipPlan) -> list[list[str]]:
    return [[a.kind for a in write.actions] for write in plan.writes]


def the_patch(plan: FlipPlan) -> PatchGate:
    [write] = plan.writes
    patch = write.actions[0]
    assert isinstance(patch, PatchGate)
    return patch


def test_a_true_gate_is_a_fence_kept_without_a_write_whatever_its_health() -> None:
    ready = condition("True", GATE_READY_REASON, "healthy on every CLB listener of ns/web")
    plan = plan_flip(snapshot(pod(gate=ready), health=[health(detail="Dead")], gates={"uid-web-1": "True"}))
    assert [a.kind for a in plan.actions] == ["keep_fence"] and plan.writes == []
    [answer] = plan.outcome
    assert (answer.status, answer.changed, answer.fenced) == ("True", False, True)


def test_a_fence_whose_record_was_lost_is_recorded_again_and_nothing_else() -> None:
    ready = condition("True", GATE_READY_REASON, "healthy")
    plan = plan_flip(snapshot(pod(gate=ready)))
    fence, record = plan.actions
    assert isinstance(fence, KeepFence) and isinstance(record, RecordGate)
    assert (record.pod_uid, record.status) == ("uid-web-1", "True") and plan.writes == []


def test_healthy_on_every_listener_patches_the_gate_true_with_its_event_record_and_timeline() -> None:
    plan = plan_flip(snapshot(pod(), health=[health()]))
    assert plan.actions == [] and write_kinds(plan) == [["patch_gate", "emit_event", "record_gate", "record_timeline"]]
    patch, event, record, timeline = plan.writes[0].actions
    assert isinstance(patch, PatchGate) and isinstance(event, EmitEvent)
    assert (patch.condition.status, patch.condition.reason) == ("True", GATE_READY_REASON)
    assert patch.condition.last_transition_time == rfc3339_at(NOW) and patch.pod_uid == "uid-web-1"
    assert (event.type, event.reason, event.regarding.kind) == ("Normal", "ReadinessGateReady", "Pod")
    assert isinstance(record, RecordGate) and record.status == "True"
    assert isinstance(timeline, RecordTimeline) and (timeline.service, timeline.alive_at) == ("ns/web", NOW)
    assert plan.summary()["changed"] == 1


def test_a_pod_not_healthy_yet_goes_false_saying_what_is_pending() -> None:
    plan = plan_flip(snapshot(pod(), health=[health(detail="Unknown")]))
    patch = the_patch(plan)
    assert (patch.condition.status, patch.condition.reason) == ("False", REASON_NOT_READY)
    assert patch.condition.message == "waiting for CLB health: ns/web: TCP:80 (l80) Unknown"
    assert write_kinds(plan) == [["patch_gate", "emit_event", "record_gate"]], "no timeline mark for False"


def test_a_pod_whose_target_is_not_registered_waits_and_a_recorded_use_limit_is_named() -> None:
    plan = plan_flip(snapshot(pod(), limits={"uid-web-1": "Pod exceeds the CLB's backend quota"}))
    message = the_patch(plan).condition.message or ""
    assert message.startswith("waiting for CLB health: Pod exceeds the CLB's backend quota; ")
    assert "TCP:80 (l80) not registered" in message


def test_an_unchanged_condition_costs_no_write() -> None:
    pending = condition("False", REASON_NOT_READY, "waiting for CLB health: ns/web: TCP:80 (l80) Unknown")
    plan = plan_flip(snapshot(pod(gate=pending), health=[health(detail="Unknown")]))
    assert plan.actions == [] and plan.writes == []
    assert [(a.status, a.changed) for a in plan.outcome] == [("False", False)]


def test_a_new_message_is_written_without_a_transition_event_or_record() -> None:
    earlier = condition("False", REASON_NOT_READY, "waiting for CLB health: ns/web: TCP:80 no listener yet")
    plan = plan_flip(snapshot(pod(gate=earlier), health=[health(detail="Unknown")]))
    assert write_kinds(plan) == [["patch_gate"]]
    assert the_patch(plan).condition.last_transition_time == earlier.last_transition_time


def test_fail_open_schedules_a_re_check_at_its_deadline_while_the_gate_is_false() -> None:
    plan = plan_flip(snapshot(pod(), services=[service(**{FAIL_OPEN_ANNOTATION: "300"})]))
    [recheck] = plan.actions
    assert isinstance(recheck, ScheduleRecheck) and recheck.due_at == CREATED + 300
    assert (recheck.request.step, [str(k) for k in recheck.request.pods]) == ("flip", ["ns/web-1"])
    assert the_patch(plan).condition.status == "False"


def test_fail_open_past_its_deadline_releases_the_gate_with_a_warning() -> None:
    plan = plan_flip(snapshot(pod(), services=[service(**{FAIL_OPEN_ANNOTATION: "60"})]))
    assert plan.actions == [] and write_kinds(plan) == [["patch_gate", "emit_event", "record_gate", "record_timeline"]]
    patch, event = plan.writes[0].actions[:2]
    assert isinstance(patch, PatchGate) and isinstance(event, EmitEvent)
    assert (patch.condition.status, patch.condition.reason) == ("True", REASON_FAIL_OPEN)
    assert (event.type, event.reason) == ("Warning", REASON_FAIL_OPEN) and "fail-open" in event.message


def test_a_port_held_by_a_foreign_listener_on_an_adopted_clb_keeps_the_gate_false_with_a_warning() -> None:
    adopted = service(**{EXISTED_LB_ANNOTATION: "lb-1"})
    foreign = Listener(listener_id="l-theirs", port=80, name="someone-else")
    plan = plan_flip(snapshot(pod(), services=[adopted], listeners={"lb-1": [foreign]}))
    patch = the_patch(plan)
    assert (patch.condition.status, patch.condition.reason) == ("False", REASON_PORT_CONFLICT)
    assert "held by listener l-theirs" in (patch.condition.message or "")
    event = plan.writes[0].actions[1]
    assert isinstance(event, EmitEvent) and (event.type, event.reason) == ("Warning", REASON_PORT_CONFLICT)


def test_a_pod_no_service_selects_is_released_without_a_timeline_mark() -> None:
    plan = plan_flip(snapshot(pod(), services=[]))
    patch = the_patch(plan)
    assert (patch.condition.status, patch.condition.reason) == ("True", REASON_RELEASED)
    assert write_kinds(plan) == [["patch_gate", "emit_event", "record_gate"]]


def test_a_terminating_pod_is_left_alone() -> None:
    plan = plan_flip(snapshot(pod(deletion_timestamp="2023-11-14T22:20:00Z"), health=[health()]))
    assert plan.actions == [] and plan.writes == [] and plan.outcome == []


def test_a_selected_pod_admitted_without_the_gate_is_reported_once_on_its_service() -> None:
    ungated = [pod("web-1", readiness_gates=[]), pod("web-2", "10.0.0.2", readiness_gates=[])]
    plan = plan_flip(snapshot(*ungated))
    event, first, second = plan.actions
    assert isinstance(event, EmitEvent) and (event.type, event.reason) == ("Warning", "ReadinessGateMissing")
    assert event.regarding.kind == "Service" and "ns/web-1, ns/web-2" in event.message
    assert "ReplicaSet web-rs1" in event.message
    assert [(r.pod, r.status) for r in (first, second) if isinstance(r, RecordGate)] == [
        ("ns/web-1", "ungated"),
        ("ns/web-2", "ungated"),
    ]
    assert plan.writes == [] and plan.outcome == []
    again = plan_flip(snapshot(*ungated, gates={"uid-web-1": "ungated", "uid-web-2": "ungated"}))
    assert again.actions == []


def test_a_host_network_pod_without_the_gate_is_recorded_but_not_reported() -> None:
    plan = plan_flip(snapshot(pod(readiness_gates=[], host_network=True)))
    assert [a.kind for a in plan.actions] == ["record_gate"]


def test_services_are_looked_at_only_for_pods_the_plan_decides_or_reports() -> None:
    ready = condition("True", GATE_READY_REASON, "healthy")
    assert needs_services(pod(), None)
    assert not needs_services(pod(gate=ready), "True")
    assert needs_services(pod(readiness_gates=[]), None) and not needs_services(pod(readiness_gates=[]), "ungated")
    assert not needs_services(pod(readiness_gates=[], host_network=True), None)


def test_the_plan_reads_back_from_its_json() -> None:
    plan = plan_flip(snapshot(pod(), pod("web-2", "10.0.0.2", readiness_gates=[]), health=[health()]))
    assert FlipPlan.model_validate(plan.model_dump(mode="json")) == plan
