"""The batch planner is pure: a snapshot in, a typed plan out (every CLB, Kubernetes and store action with
its reason). Registration, the one drain path (Pods and extra targets), quota and use limits."""

from __future__ import annotations

from typing import Any

from shared.domain.batch import BatchPlan, BatchSnapshot, ClbAction, FollowUp, PodState, PutBinding, plan_batch
from shared.domain.clb_work import ClbWork, split_work
from shared.domain.listeners import listener_name
from shared.domain.models import (
    DIRECT_ACCESS_ANNOTATION,
    LB_ID_ANNOTATION,
    VPC_CNI_NETWORKS_ANNOTATION,
    BindingRecord,
    Listener,
    PodInfo,
    ServiceInfo,
    ServicePort,
    Target,
)
from tests.support.models import serving_pod

NOW = 1000.0
SERVICE = ServiceInfo(
    namespace="ns",
    name="web",
    uid="s1",
    type="LoadBalancer",
    annotations={DIRECT_ACCESS_ANNOTATION: "true", LB_ID_ANNOTATION: "lb-1"},
    selector={"app": "web"},
    ports=[ServicePort(port=80, target_port="http")],
)
LISTENER = Listener(listener_id="l80", port=80, name=listener_name("ns", "web", "TCP", 80))


def pod(name: str, ip: str, **kw: Any) -> PodInfo:
    return serving_pod(name, ip, **{"annotations": {VPC_CNI_NETWORKS_ANNOTATION: "tke-route-eni"}, **kw})


def record(name: str, ip: str, state: str = "registered", **kw: Any) -> BindingRecord:
    values: dict[str, Any] = {
        "lb_id": "lb-1",
        "listener_id": "l80",
        "pod_uid": f"uid-{name}",
        "namespace": "ns",
        "pod_name": name,
        "service": "ns/web",
        "ip": ip,
        "port": 8080,
        "state": state,
    }
    values.update(kw)
    return BindingRecord(**values)


def target(ip: str, weight: int = 10) -> Target:
    return Target(listener_id="l80", ip=ip, port=8080, weight=weight)


def snapshot(**kw: Any) -> BatchSnapshot:
    values: dict[str, Any] = {
        "lb_id": "lb-1",
        "now": NOW,
        "backend_quota": 200,
        "default_weight": 10,
        "drain_timeout_s": 30.0,
        "listeners": [LISTENER],
        "services": {"ns/web": SERVICE},
    }
    values.update(kw)
    return BatchSnapshot(**values)


def kinds(plan: BatchPlan) -> list[str]:
    return [a.action if isinstance(a, ClbAction) else a.kind for a in plan.actions]


def clb_calls(plan: BatchPlan) -> list[tuple[str, list[tuple[str, int]]]]:
    return [(a.action, [(t.ip, t.weight) for t in a.targets]) for a in plan.actions if isinstance(a, ClbAction)]


def bind_snapshot(pods: list[PodInfo], **kw: Any) -> BatchSnapshot:
    return snapshot(bind_services=["ns/web"], service_pods={"ns/web": pods}, **kw)


def test_ready_pods_are_recorded_registering_before_one_register_call_then_registered_and_flipped() -> None:
    plan = plan_batch(bind_snapshot([pod("web-1", "10.0.0.1"), pod("web-2", "10.0.0.2")]), correlation_id="c1")
    assert kinds(plan) == [
        "record_binding", "record_binding", "register_targets", "record_binding", "record_binding", "timeline",
        "follow_up",
    ]  # fmt: skip
    assert clb_calls(plan) == [("register_targets", [("10.0.0.1", 10), ("10.0.0.2", 10)])]
    states = [a.binding.state for a in plan.actions if isinstance(a, PutBinding)]
    assert states == ["registering", "registering", "registered", "registered"]
    [flip] = [a.request for a in plan.actions if isinstance(a, FollowUp)]
    assert (flip.step, [str(p) for p in flip.pods], flip.correlation_id) == ("flip", ["ns/web-1", "ns/web-2"], "c1")
    assert plan.outcome["registered"] == ["ns/web-1@10.0.0.1:8080/l80", "ns/web-2@10.0.0.2:8080/l80"]
    assert all(a.reason for a in plan.actions if isinstance(a, (ClbAction, PutBinding)))
    assert BatchPlan.model_validate_json(plan.model_dump_json()).actions == plan.actions  # a plain value


def test_a_bound_pod_with_a_true_gate_is_left_alone() -> None:
    plan = plan_batch(
        bind_snapshot([pod("web-1", "10.0.0.1")], actual=[target("10.0.0.1")], bindings=[record("web-1", "10.0.0.1")],
                      true_gates=frozenset({"uid-web-1"})),
        correlation_id=None,
    )  # fmt: skip
    assert plan.actions == [] and plan.outcome == {}


def test_over_quota_pods_are_refused_once_with_a_warning_and_flipped() -> None:
    snap = bind_snapshot([pod("web-1", "10.0.0.1"), pod("web-2", "10.0.0.2")], backend_quota=1)
    plan = plan_batch(snap, correlation_id=None)
    assert clb_calls(plan) == [("register_targets", [("10.0.0.1", 10)])]
    assert "backend quota of 1" in plan.outcome["refused"]["ns/web-2"]
    assert [a.kind for a in plan.actions if isinstance(a, PodState)] == ["record_limit"]
    assert any(a.kind == "emit_event" and a.reason == "DirectAccessLimit" for a in plan.actions)
    again = plan_batch(snap.model_copy(update={"limits": {"uid-web-2": plan.outcome["refused"]["ns/web-2"]}}),
                       correlation_id=None)  # fmt: skip
    assert not any(a.kind in ("record_limit", "emit_event") for a in again.actions)  # reported once


def test_a_terminating_pod_is_drained_then_rechecked_then_deregistered() -> None:
    leaving = pod("web-1", "10.0.0.1", deletion_timestamp="2023-11-14T22:20:00Z")
    snap = snapshot(unbind_uids=["uid-web-1"], actual=[target("10.0.0.1")], bindings=[record("web-1", "10.0.0.1")],
                    pods={"ns/web-1": leaving})  # fmt: skip
    plan = plan_batch(snap, correlation_id="c1")
    assert clb_calls(plan) == [("drain_targets", [("10.0.0.1", 0)])]
    [drained] = [a.binding for a in plan.actions if isinstance(a, PutBinding)]
    assert (drained.state, drained.drain_started_at) == ("draining", NOW)
    [recheck] = [a.request for a in plan.actions if isinstance(a, FollowUp)]
    assert (recheck.step, recheck.pod_uids, recheck.not_before) == ("unbind", ["uid-web-1"], NOW + 30)

    early = snap.model_copy(update={"now": NOW + 10, "bindings": [drained], "actual": [target("10.0.0.1", 0)]})
    waiting = plan_batch(early, correlation_id=None)
    assert clb_calls(waiting) == [] and [a.request.not_before for a in waiting.actions if isinstance(a, FollowUp)] == [
        NOW + 30
    ]
    done = plan_batch(early.model_copy(update={"now": NOW + 30}), correlation_id=None)
    assert clb_calls(done) == [("deregister_targets", [("10.0.0.1", 0)])]
    assert kinds(done)[-3:] == ["timeline", "forget_binding", "forget_pod_state"]


def test_a_pod_gone_is_deregistered_at_once_and_a_target_another_binding_claims_is_never_touched() -> None:
    gone = plan_batch(
        snapshot(unbind_uids=["uid-web-1"], actual=[target("10.0.0.1")], bindings=[record("web-1", "10.0.0.1")]),
        correlation_id=None,
    )
    assert clb_calls(gone) == [("deregister_targets", [("10.0.0.1", 10)])]
    reused = plan_batch(
        snapshot(unbind_uids=["uid-web-1"], actual=[target("10.0.0.1")],
                 bindings=[record("web-1", "10.0.0.1"), record("web-9", "10.0.0.1")]),
        correlation_id=None,
    )  # fmt: skip
    assert clb_calls(reused) == [] and kinds(reused) == ["forget_binding", "forget_pod_state"]


def test_an_extra_target_a_live_pod_holds_takes_the_one_drain_path() -> None:
    unready = pod("web-2", "10.0.0.2", containers_ready=False)
    snap = bind_snapshot([pod("web-1", "10.0.0.1"), unready], actual=[target("10.0.0.1"), target("10.0.0.2")],
                         bindings=[record("web-1", "10.0.0.1")], ip_holders={"10.0.0.2": [unready]},
                         namespace_services={"ns": [SERVICE]}, true_gates=frozenset({"uid-web-1"}))  # fmt: skip
    plan = plan_batch(snap, correlation_id=None)
    assert clb_calls(plan) == [("drain_extra_targets", [("10.0.0.2", 0)])]
    [adopted] = [a.binding for a in plan.actions if isinstance(a, PutBinding)]
    assert (adopted.pod_uid, adopted.state, adopted.origin, adopted.drain_started_at) == (
        "uid-web-2", "draining", "extra", NOW,
    )  # fmt: skip
    assert [a.reason for a in plan.actions if a.kind == "emit_event"] == ["DrainingExtraTargets"]
    [recheck] = [a.request for a in plan.actions if isinstance(a, FollowUp)]
    assert (recheck.step, recheck.pod_uids, recheck.not_before) == ("unbind", ["uid-web-2"], NOW + 30)

    # After the drain timeout the unbind half deregisters it, as for any Pod, and forgets no Pod state.
    later = snapshot(now=NOW + 30, unbind_uids=["uid-web-2"], actual=[target("10.0.0.2", 0)], bindings=[adopted],
                     pods={"ns/web-2": unready})  # fmt: skip
    done = plan_batch(later, correlation_id=None)
    assert clb_calls(done) == [("deregister_targets", [("10.0.0.2", 0)])]
    assert "forget_pod_state" not in kinds(done) and "timeline" not in kinds(done)
    [event] = [a for a in done.actions if a.kind == "emit_event"]
    assert event.reason == "RemovedExtraTargets" and "drain timeout of 30s elapsed" in event.message


def test_an_extra_target_no_live_pod_holds_is_cut_at_once_freeing_quota() -> None:
    snap = bind_snapshot([pod("web-1", "10.0.0.1")], actual=[target("10.0.0.9")], backend_quota=1)
    plan = plan_batch(snap, correlation_id=None)
    assert clb_calls(plan) == [
        ("deregister_extra_targets", [("10.0.0.9", 10)]),
        ("register_targets", [("10.0.0.1", 10)]),
    ]
    assert "no live Pod has IP 10.0.0.9" in plan.outcome["extra_deregistered"][0]


def test_a_stale_port_of_a_pod_bound_on_the_same_listener_is_cut_not_recorded_over_its_binding() -> None:
    web1 = pod("web-1", "10.0.0.1")
    old_port = Target(listener_id="l80", ip="10.0.0.1", port=9090, weight=10)
    snap = bind_snapshot([web1], actual=[target("10.0.0.1"), old_port], bindings=[record("web-1", "10.0.0.1")],
                         ip_holders={"10.0.0.1": [web1]}, namespace_services={"ns": [SERVICE]},
                         true_gates=frozenset({"uid-web-1"}))  # fmt: skip
    plan = plan_batch(snap, correlation_id=None)
    assert clb_calls(plan) == [("deregister_extra_targets", [("10.0.0.1", 10)])]
    assert not any(isinstance(a, PutBinding) for a in plan.actions)
    assert "at another port" in plan.outcome["extra_deregistered"][0]


def test_a_bind_of_some_pods_plans_only_them_and_leaves_the_service_s_other_targets_alone() -> None:
    # web-1 serves (its record and target are there), 10.0.0.9 is a target no Pod accounts for; the
    # event is about web-2 only: it is registered, nothing else is looked at (no extra-target removal,
    # no re-record of web-1, no unbind of web-1 although this snapshot has no Pod object for it).
    fresh = pod("web-2", "10.0.0.2")
    snap = snapshot(
        bind_services=["ns/web"], bind_pods={"ns/web": ["ns/web-2"]}, scoped_pods={"ns/web": [fresh]},
        actual=[target("10.0.0.1"), target("10.0.0.9")], bindings=[record("web-1", "10.0.0.1")],
    )  # fmt: skip
    plan = plan_batch(snap, correlation_id=None)
    assert clb_calls(plan) == [("register_targets", [("10.0.0.2", 10)])]
    assert not any(isinstance(a, FollowUp) and a.request.step == "unbind" for a in plan.actions)
    assert [a.binding.pod_name for a in plan.actions if isinstance(a, PutBinding)] == ["web-2", "web-2"]
    whole = plan_batch(
        snap.model_copy(update={"bind_pods": {}, "service_pods": {"ns/web": [fresh]}}), correlation_id=None
    )
    cut = [ip for action, targets in clb_calls(whole) if action == "deregister_extra_targets" for ip, _ in targets]
    assert "10.0.0.9" in cut  # the Service-wide bind does judge the listener's extra targets


def test_split_work_binds_a_service_whole_once_any_item_asks_for_all_of_it() -> None:
    items = [ClbWork.bind("ns/a", pod="ns/p2"), ClbWork.bind("ns/a", pod="ns/p1"), ClbWork.bind("ns/b", pod="ns/p1"),
             ClbWork.bind("ns/b"), ClbWork.unbind("uid-3"), ClbWork.bind("ns/a", pod="ns/p1")]  # fmt: skip
    work = split_work(items)
    assert (work.services, work.pods, work.unbind_uids) == (["ns/a", "ns/b"], {"ns/a": ["ns/p1", "ns/p2"]}, ["uid-3"])
    assert ClbWork.decode(ClbWork.bind("ns/a").member()) == ClbWork.bind("ns/a")  # old members stay readable
    assert ClbWork.bind("ns/a").member() == '{"kind":"bind","service":"ns/a"}'
