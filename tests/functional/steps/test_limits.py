"""Every use limit surfaces as a Warning Event and a gate condition message, never silently."""

from __future__ import annotations

from typing import Any

import pytest

from tests.functional.steps.conftest import Env, pod, service


def bind_all(env: Env, *pods: Any) -> str:
    env.cluster.put_service(service())
    for p in pods:
        env.cluster.put_pod(p)
    assert env.invoke("service", "service_web")["ok"]
    env.drain()
    return env.lb_id()


@pytest.mark.parametrize("settings_overrides", [{"backend_quota": 2}])
def test_backend_quota(env: Env) -> None:
    lb_id = bind_all(env, *(pod(f"web-{i}", f"10.0.0.{i}") for i in range(1, 4)))
    assert len(env.targets(lb_id)) == 2
    status, _, message = env.gate("web-3")
    assert status == "False" and "backend quota of 2" in message
    warnings = [m for ref, t, r, m in env.cluster.events if t == "Warning" and ref.name == "web-3"]
    assert len(warnings) == 1 and "quota" in warnings[0]
    # a repeated bind does not repeat the Warning
    env.invoke("bind", "bind_web")
    env.drain()
    assert len([1 for ref, t, _, _ in env.cluster.events if t == "Warning" and ref.name == "web-3"]) == 1
    # room frees up -> the refused Pod is registered and its limit message cleared
    env.cluster.remove_pod("default", "web-1")
    env.invoke("unbind", {"step": "unbind", "pod_uids": ["uid-web-1"]})
    env.invoke("bind", {"step": "bind", "services": [{"namespace": "default", "name": "web"}]})
    env.drain()
    assert ("10.0.0.3", 8080, 10) in env.targets(lb_id)
    assert "quota" not in env.gate("web-3")[2]


@pytest.mark.parametrize("settings_overrides", [{"backend_quota": 2}])
def test_a_pod_refused_for_quota_is_registered_by_the_deregistration_that_frees_room(env: Env) -> None:
    """A rollout at the quota: the new Pod waits on the CLB and goes in with the next deregistration, in the
    same writer's run, without a Service-wide bind or the reconcile timer."""
    lb_id = bind_all(env, pod("web-1", "10.0.0.1"), pod("web-2", "10.0.0.2"))
    env.cluster.put_pod(pod("web-3", "10.0.0.3"))
    env.invoke("bind", {"step": "bind", "pods": [{"namespace": "default", "name": "web-3"}]})
    env.drain()
    assert ("10.0.0.3", 8080, 10) not in env.targets(lb_id)
    assert "backend quota of 2" in env.gate("web-3")[2]
    registers = env.counts().get("BatchRegisterTargets", 0)

    env.cluster.remove_pod("default", "web-1")
    result = env.invoke("unbind", {"step": "unbind", "pod_uids": ["uid-web-1"]})
    assert result["ok"]
    env.drain()
    assert env.targets(lb_id) == {("10.0.0.2", 8080, 10), ("10.0.0.3", 8080, 10)}
    assert env.counts()["BatchRegisterTargets"] == registers + 1
    assert "quota" not in env.gate("web-3")[2]


def test_host_network_pod_is_refused(env: Env) -> None:
    lb_id = bind_all(env, pod("web-1", "10.0.0.1"), pod("web-h", "192.168.0.5", host_network=True))
    assert env.targets(lb_id) == {("10.0.0.1", 8080, 10)}
    assert "hostNetwork" in env.gate("web-h")[2] and env.gate("web-h")[0] == "False"
    assert "DirectAccessLimit" in env.cluster.event_reasons("Pod")


def test_old_kubernetes_is_refused_before_any_change(env: Env) -> None:
    env.cluster.version = (1, 11)
    env.cluster.put_service(service())
    result = env.invoke("service", "service_web")
    assert result["ok"] is False and result["error"] == "LimitExceeded" and "1.11" in result["message"]
    assert env.counts() == {} and "UnsupportedClusterVersion" in env.cluster.event_reasons("Service")


def test_workload_mixing_network_modes(env: Env) -> None:
    gr = pod("web-2", "10.0.0.2", annotations={"tke.cloud.tencent.com/networks": ""})
    lb_id = bind_all(env, pod("web-1", "10.0.0.1"), gr)
    assert env.targets(lb_id) == set()
    assert "mixes VPC-CNI and GlobalRouter" in env.gate("web-1")[2]


def test_global_router_needs_cluster_switch(env: Env) -> None:
    env.cluster.cluster_config = {}
    gr = {"annotations": {"tke.cloud.tencent.com/networks": ""}}
    lb_id = bind_all(env, pod("web-1", "10.0.0.1", owner="vpc"), pod("web-2", "10.0.0.2", owner="gr", **gr))
    assert env.targets(lb_id) == {("10.0.0.1", 8080, 10)}
    assert "GlobalRouteDirectAccess" in env.gate("web-2")[2]
    env.cluster.cluster_config = {"GlobalRouteDirectAccess": "true"}
    env.invoke("bind", {"step": "bind", "services": [{"namespace": "default", "name": "web"}]})
    env.drain()
    assert ("10.0.0.2", 8080, 10) in env.targets(lb_id)


def test_a_bridge_network_pod_is_global_router_and_needs_the_switch(env: Env) -> None:
    """`networks: tke-bridge` names the GlobalRouter bridge, not an ENI (issue 15 #3)."""
    env.cluster.cluster_config = {}
    bridge = {"annotations": {"tke.cloud.tencent.com/networks": "tke-bridge"}}
    lb_id = bind_all(env, pod("web-1", "10.0.0.1", owner="vpc"), pod("web-2", "10.0.0.2", owner="bridge", **bridge))
    assert env.targets(lb_id) == {("10.0.0.1", 8080, 10)}
    assert "GlobalRouter" in env.gate("web-2")[2] and env.gate("web-2")[0] == "False"
    warnings = [m for ref, t, _, m in env.cluster.events if t == "Warning" and ref.name == "web-2"]
    assert warnings and "GlobalRouteDirectAccess" in warnings[0]


def test_one_service_over_a_vpc_cni_and_a_global_router_deployment_is_supported(env: Env) -> None:
    """Decision (issue 15 #4, docs/network-modes.md): modes are per workload; a Service may select both."""
    env.cluster.cluster_config = {"GlobalRouteDirectAccess": "true"}
    gr = {"annotations": {"tke.cloud.tencent.com/networks": "tke-bridge"}}
    pods = [pod(f"eni-{i}", f"10.0.1.{i}", owner="web-eni") for i in (1, 2)]
    pods += [pod(f"gr-{i}", f"10.0.2.{i}", owner="web-gr", **gr) for i in (1, 2)]
    lb_id = bind_all(env, *pods)
    assert env.targets(lb_id) == {(p.ip, 8080, 10) for p in pods}
    assert not [m for _, t, _, m in env.cluster.events if t == "Warning"]
