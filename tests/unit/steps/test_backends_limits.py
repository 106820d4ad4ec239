"""Backend eligibility, target ports, weights, quota, unbind decisions and use limits."""

from __future__ import annotations

import pytest

from shared.domain.backends import (
    desired_backends,
    ineligibility,
    plan_registration,
    plan_unbind,
    pod_weight,
    resolve_target_port,
    selects,
)
from shared.domain.limits import cluster_version_problem, network_mode, pod_limit_problems
from shared.domain.models import BindingRecord, ContainerPort, Listener, PodInfo, ServiceInfo, ServicePort, Target
from tests.support.models import serving_pod


def pod(name: str, ip: str | None = "10.0.0.1", **kw: object) -> PodInfo:
    return serving_pod(name, ip, **{"creation_timestamp": f"2024-01-01T00:00:0{len(name) % 10}Z", **kw})


SERVICE = ServiceInfo(
    namespace="ns",
    name="web",
    uid="s1",
    type="LoadBalancer",
    selector={"app": "web"},
    ports=[ServicePort(port=80, target_port="http"), ServicePort(port=81, target_port=9000)],
)
LISTENERS = [
    (SERVICE.ports[0], Listener(listener_id="l80", port=80)),
    (SERVICE.ports[1], Listener(listener_id="l81", port=81)),
]


def test_selects_requires_nonempty_selector() -> None:
    assert selects({"a": "1"}, {"a": "1", "b": "2"})
    assert not selects({"a": "1"}, {"a": "2"})
    assert not selects({}, {"a": "1"})


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"deletion_timestamp": "2024-01-01T00:00:00Z"}, "terminating"),
        ({"ip": None}, "no IP"),
        ({"containers_ready": False}, "not ready"),
        ({"phase": "Failed"}, "Failed"),
        ({"host_network": True}, "hostNetwork"),
    ],
)
def test_ineligible_pods(changes: dict, reason: str) -> None:
    result = ineligibility(pod("a", **changes))
    assert result is not None and reason in result


def test_eligible_without_ready_because_containers_ready_counts() -> None:
    assert ineligibility(pod("a", ready=False)) is None


def test_target_port_resolution() -> None:
    p = pod(
        "a",
        container_ports=[
            ContainerPort(name="http", container_port=8081),
            ContainerPort(name="dns", container_port=53, protocol="UDP"),
        ],
    )
    assert resolve_target_port(ServicePort(port=80, target_port="http"), p) == 8081
    assert resolve_target_port(ServicePort(port=80, target_port="8082"), p) == 8082
    assert resolve_target_port(ServicePort(port=80), p) == 80
    assert resolve_target_port(ServicePort(port=53, target_port="dns"), p) is None  # TCP port, UDP name
    assert resolve_target_port(ServicePort(port=53, protocol="UDP", target_port="dns"), p) == 53


def test_weights() -> None:
    assert pod_weight(pod("a"), 10) == (10, None)
    assert pod_weight(pod("a", annotations={"service.cloud.tencent.com/custom-weight": "0"}), 10) == (0, None)
    weight, warning = pod_weight(pod("a", annotations={"service.cloud.tencent.com/custom-weight": "500"}), 7)
    assert weight == 7 and warning is not None and "0..100" in warning


def test_desired_backends_per_listener_with_named_ports_and_problems() -> None:
    pods = [
        pod("a", ip="10.0.0.1", annotations={"service.cloud.tencent.com/custom-weight": "50"}),
        pod("b", ip="10.0.0.2", container_ports=[ContainerPort(name="http", container_port=7070)]),
        pod("c", ip="10.0.0.3", containers_ready=False),
        pod("other", labels={"app": "db"}),
        pod("d", ip="10.0.0.4", container_ports=[]),
    ]
    result = desired_backends(SERVICE, LISTENERS, pods, default_weight=10, refused={"uid-b": "limit!"})
    got = {(t.pod_name, t.listener_id, t.port, t.weight) for t in result.targets}
    assert got == {("a", "l80", 8080, 50), ("a", "l81", 9000, 50), ("d", "l81", 9000, 10)}
    assert result.problems["uid-b"] == "limit!"
    assert "not ready" in result.problems["uid-c"]
    assert "matches no TCP container port" in result.problems["uid-d"]
    assert "uid-other" not in result.problems


def test_registration_plan_quota_keeps_pods_whole() -> None:
    service = SERVICE.model_copy(
        update={"ports": [ServicePort(port=80, target_port=8080), ServicePort(port=81, target_port=8080)]}
    )
    pods = [pod(n, ip=f"10.0.0.{i}") for i, n in enumerate(["a", "bb", "ccc"], start=1)]
    desired = desired_backends(
        service, [(service.ports[0], LISTENERS[0][1]), (service.ports[1], LISTENERS[1][1])], pods, default_weight=10
    ).targets
    actual = [
        Target(listener_id="l80", ip="10.0.0.1", port=8080, weight=5),
        Target(listener_id="l81", ip="10.0.0.1", port=8080, weight=10),
    ]
    plan = plan_registration(desired, actual, quota=3)
    assert [(t.pod_name, t.listener_id) for t in plan.reweight] == [("a", "l80")]
    assert [(t.pod_name, t.listener_id) for t in plan.already] == [("a", "l81")]
    # 2 backends used; every new Pod needs 2 more, which would exceed 3: refused whole, never half-bound.
    assert plan.register == []
    assert {t.pod_name for t in plan.over_quota} == {"bb", "ccc"}
    roomy = plan_registration(desired, actual, quota=4)
    assert {t.pod_name for t in roomy.register} == {"bb"} and len(roomy.register) == 2
    assert {t.pod_name for t in roomy.over_quota} == {"ccc"}


def binding(**kw: object) -> BindingRecord:
    base: dict[str, object] = {
        "lb_id": "lb-1",
        "listener_id": "l80",
        "pod_uid": "uid-a",
        "namespace": "ns",
        "pod_name": "a",
        "service": "ns/web",
        "ip": "10.0.0.1",
        "port": 8080,
        "state": "registered",
    }
    base.update(kw)
    return BindingRecord(**base)  # type: ignore[arg-type]


def test_unbind_decisions() -> None:
    live = pod("a")
    assert plan_unbind(binding(), live, still_wanted=None, now=100, drain_timeout_s=30).kind == "keep"
    assert plan_unbind(binding(), None, still_wanted="x", now=100, drain_timeout_s=30).kind == "deregister"
    replaced = pod("a", uid="uid-new")
    assert plan_unbind(binding(), replaced, still_wanted=None, now=100, drain_timeout_s=30).kind == "deregister"
    drain = plan_unbind(binding(), live, still_wanted="terminating", now=100, drain_timeout_s=30)
    assert (drain.kind, drain.recheck_at) == ("drain", 130)
    draining = binding(state="draining", drain_started_at=100.0)
    wait = plan_unbind(draining, live, still_wanted="terminating", now=110, drain_timeout_s=30)
    assert (wait.kind, wait.recheck_at) == ("wait", 130)
    assert plan_unbind(draining, live, still_wanted="t", now=130, drain_timeout_s=30).kind == "deregister"
    assert (
        plan_unbind(binding(state="deregistered"), live, still_wanted=None, now=1, drain_timeout_s=1).kind == "forget"
    )


def test_network_modes() -> None:
    assert network_mode(pod("a", annotations={"tke.cloud.tencent.com/networks": "tke-route-eni"})) == "vpc-cni"
    assert network_mode(pod("a", resource_requests=["tke.cloud.tencent.com/eni-ip"])) == "vpc-cni"
    assert network_mode(pod("a", resource_requests=["tke.cloud.tencent.com/direct-eni"])) == "vpc-cni"
    assert network_mode(pod("a")) == "global-router"
    assert network_mode(pod("a", host_network=True)) == "host-network"


NETWORKS = "tke.cloud.tencent.com/networks"


@pytest.mark.parametrize(
    ("networks", "mode"),
    [
        ("tke-route-eni", "vpc-cni"),
        ("tke-direct-eni", "vpc-cni"),
        ("tke-bridge", "global-router"),  # the GlobalRouter bridge: named, but not an ENI (issue 15 #3)
        ("tke-bridge,tke-route-eni", "vpc-cni"),
        ("kube-system/tke-route-eni@eth1", "vpc-cni"),
        ('[{"name": "tke-direct-eni"}]', "vpc-cni"),
        ('["tke-bridge"]', "global-router"),
        ("  ", "global-router"),
    ],
)
def test_network_mode_comes_from_what_the_annotation_names(networks: str, mode: str) -> None:
    assert network_mode(pod("a", annotations={NETWORKS: networks})) == mode


def test_a_named_non_eni_network_wins_over_an_eni_resource_request() -> None:
    bridged = pod("a", annotations={NETWORKS: "tke-bridge"}, resource_requests=["tke.cloud.tencent.com/eni-ip"])
    assert network_mode(bridged) == "global-router"
    assert network_mode(pod("a", annotations={NETWORKS: ""}, resource_requests=["tke.cloud.tencent.com/eni-ip"])) == (
        "vpc-cni"
    )


def test_cluster_version_limit() -> None:
    assert cluster_version_problem((1, 11)) is not None
    assert cluster_version_problem((1, 12)) is None
    assert cluster_version_problem((2, 0)) is None


def test_pod_limits() -> None:
    eni = {"annotations": {"tke.cloud.tencent.com/networks": "tke-route-eni"}, "owner_kind": "ReplicaSet"}
    pods = [
        pod("a", owner_name="rs1", **eni),
        pod("b", owner_kind="ReplicaSet", owner_name="rs1"),  # GR in a VPC-CNI workload
        pod("c", owner_kind="ReplicaSet", owner_name="rs2"),  # GR alone
        pod("h", host_network=True),
        pod("z", owner_name="rs1", deletion_timestamp="x", **eni),
    ]
    allowed = pod_limit_problems(pods, cluster_config={"GlobalRouteDirectAccess": "true"})
    assert set(allowed) == {"uid-a", "uid-b", "uid-h"}
    assert "mixes VPC-CNI and GlobalRouter" in allowed["uid-a"]
    assert "hostNetwork" in allowed["uid-h"]
    # already-bound Pods are never refused for mixing; GR Pods are refused without the cluster switch
    refused = pod_limit_problems(pods, cluster_config={}, bound_uids=frozenset({"uid-a", "uid-b"}))
    assert set(refused) == {"uid-b", "uid-c", "uid-h"}
    assert "GlobalRouteDirectAccess" in refused["uid-c"] and "GlobalRouteDirectAccess" in refused["uid-b"]
