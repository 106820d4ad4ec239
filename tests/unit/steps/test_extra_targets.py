"""Pure planning of extra targets: which listeners are ours, what is extra, and drain vs deregister."""

from __future__ import annotations

from typing import Any

import pytest

from shared.domain.extra_targets import (
    by_listener,
    claiming_binding,
    extra_candidates,
    managed_listener_ids,
    needed_by,
    plan_extra_target,
)
from shared.domain.listeners import listener_name
from shared.domain.models import (
    DIRECT_ACCESS_ANNOTATION,
    BindingRecord,
    ContainerPort,
    Listener,
    PodInfo,
    ServiceInfo,
    ServicePort,
    Target,
)
from tests.support.models import serving_pod

SERVICE = ServiceInfo(
    namespace="ns",
    name="web",
    uid="s1",
    type="LoadBalancer",
    annotations={DIRECT_ACCESS_ANNOTATION: "true"},
    selector={"app": "web"},
    ports=[ServicePort(port=80, target_port="http"), ServicePort(port=81, target_port=9000)],
)
OURS = Listener(listener_id="l80", port=80, name=listener_name("ns", "web", "TCP", 80))
ADOPTED_PORT = Listener(listener_id="l81", port=81, name="ops-81")
FOREIGN = Listener(listener_id="l90", port=90, name="ops-90")
LISTENERS = [OURS, ADOPTED_PORT, FOREIGN]


def pod(name: str, ip: str = "10.0.0.1", **kw: Any) -> PodInfo:
    return serving_pod(name, ip, **kw)


def binding(name: str, state: str = "registered", ip: str = "10.0.0.1") -> BindingRecord:
    return BindingRecord(
        lb_id="lb-1",
        listener_id="l80",
        pod_uid=f"uid-{name}",
        namespace="ns",
        pod_name=name,
        service="ns/web",
        ip=ip,
        port=8080,
        state=state,  # type: ignore[arg-type]
    )


T80 = Target(listener_id="l80", ip="10.0.0.1", port=8080, weight=10)


def decide(target: Target = T80, **kw: Any) -> tuple[str, str, PodInfo | None]:
    args: dict[str, Any] = {"claimed": None, "needed": None, "ip_holders": []}
    args.update(kw)
    decision = plan_extra_target(target, **args)
    return decision.kind, decision.reason, decision.holder


def test_on_an_own_clb_every_listener_of_the_service_is_managed_never_a_foreign_port() -> None:
    assert managed_listener_ids(SERVICE, LISTENERS, adopted=False) == ["l80", "l81"]


def test_on_an_adopted_clb_only_the_listeners_we_created_are_managed() -> None:
    assert managed_listener_ids(SERVICE, LISTENERS, adopted=True) == ["l80"]
    assert list(by_listener([(SERVICE, True)], LISTENERS)) == ["l80"]


def test_candidates_are_targets_on_managed_listeners_that_are_not_desired() -> None:
    actual = [
        T80,
        Target(listener_id="l80", ip="10.0.0.9", port=8080),
        Target(listener_id="l90", ip="10.0.0.9", port=8080),  # foreign listener
    ]
    got = extra_candidates(actual, managed={"l80"}, desired=[("l80", "10.0.0.1", 8080)])
    assert got == [Target(listener_id="l80", ip="10.0.0.9", port=8080)]


@pytest.mark.parametrize("state", ["registering", "registered", "draining"])
def test_an_active_binding_of_a_live_pod_claims_the_target(state: str) -> None:
    record = binding("web-1", state)
    assert claiming_binding(T80, [record], {"uid-web-1"}) == record
    kind, reason, _ = decide(claimed=record)
    assert kind == "keep" and f"{state} binding of Pod ns/web-1" in reason


def test_a_binding_of_a_dead_pod_or_a_deregistered_one_claims_nothing() -> None:
    assert claiming_binding(T80, [binding("web-1")], set()) is None
    assert claiming_binding(T80, [binding("web-1", "deregistered")], {"uid-web-1"}) is None
    assert claiming_binding(T80, [binding("web-1", ip="10.0.0.2")], {"uid-web-1"}) is None


def test_a_reused_ip_needed_by_a_live_eligible_selected_pod_is_kept() -> None:
    reused = pod("web-new")
    needed = needed_by(T80, [reused], [SERVICE], LISTENERS)
    assert needed == (reused, SERVICE)
    kind, reason, _ = decide(needed=needed, ip_holders=[reused])
    assert kind == "keep" and "ns/web-new" in reason


@pytest.mark.parametrize(
    "holder",
    [
        pod("web-1", containers_ready=False),
        pod("web-1", labels={"app": "other"}),
        pod("web-1", container_ports=[ContainerPort(name="http", container_port=9999)]),
        pod("web-1", namespace="other"),
    ],
    ids=["unready", "unselected", "other-port", "other-namespace"],
)
def test_a_pod_that_is_not_a_backend_there_does_not_need_the_target(holder: PodInfo) -> None:
    assert needed_by(T80, [holder], [SERVICE], LISTENERS) is None


def test_a_service_without_direct_access_needs_nothing() -> None:
    plain = SERVICE.model_copy(update={"annotations": {}})
    assert needed_by(T80, [pod("web-1")], [plain], LISTENERS) is None


def test_no_live_pod_with_the_ip_deregisters_at_once() -> None:
    kind, reason, holder = decide()
    assert (kind, holder) == ("deregister", None) and "no live Pod has IP 10.0.0.1" in reason
    finished = pod("job-1", phase="Succeeded")
    assert decide(ip_holders=[finished])[0] == "deregister"


def test_a_live_pod_holding_the_ip_is_drained_as_its_binding() -> None:
    # The drain itself (weight 0, timeout, deregistration) is the unbind path's: see test_batch_plan.py.
    holder = pod("web-1", containers_ready=False)
    kind, reason, drained_for = decide(ip_holders=[holder])
    assert (kind, drained_for) == ("drain", holder) and "ns/web-1" in reason
