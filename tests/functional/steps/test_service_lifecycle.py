"""Service step end to end: TkeServiceConfig, teardown and release, adoption, two Services, limits."""

from __future__ import annotations

from shared.domain.models import ServicePort
from tests.functional.steps.conftest import Env, pod, service

CONFIG = {
    "apiVersion": "cloud.tencent.com/v1alpha1",
    "kind": "TkeServiceConfig",
    "metadata": {"name": "web-clb"},
    "spec": {
        "loadBalancer": {
            "l4Listeners": [
                {
                    "protocol": "TCP",
                    "port": 80,
                    "scheduler": "LEAST_CONN",
                    "healthCheck": {"enable": True, "intervalTime": 10, "timeout": 3, "healthNum": 2, "unHealthNum": 2},
                }
            ]
        }
    },
}


def ensure(env: Env, *pods: tuple[str, str], **annotations: str) -> str:
    env.cluster.put_service(service(**annotations))
    for name, ip in pods:
        env.cluster.put_pod(pod(name, ip))
    result = env.invoke("service", "service_web")
    assert result["ok"], result
    env.drain()
    return env.lb_id()


def test_tke_service_config_applied_and_reapplied_on_change(env: Env) -> None:
    env.cluster.tke_configs[("default", "web-clb")] = CONFIG
    lb_id = ensure(env, ("web-1", "10.0.0.1"), **{"service.cloud.tencent.com/tke-service-config": "web-clb"})
    listener = env.deps.require_clb().list_listeners(lb_id)[0]
    assert listener.scheduler == "LEAST_CONN" and listener.health_check is not None
    assert (listener.health_check.interval_s, listener.health_check.healthy_threshold) == (10, 2)
    assert env.counts().get("ModifyListener", 0) == 0
    # unchanged config: a second sync is a no-op on the listener
    env.invoke("service", {"step": "service", "services": [{"namespace": "default", "name": "web"}]})
    assert env.counts().get("ModifyListener", 0) == 0
    changed = {
        **CONFIG,
        "spec": {
            "loadBalancer": {
                "l4Listeners": [
                    {
                        "protocol": "TCP",
                        "port": 80,
                        "scheduler": "WRR",
                        "session": {"enable": True, "sessionExpireTime": 120},
                    }
                ]
            }
        },
    }
    env.cluster.tke_configs[("default", "web-clb")] = changed
    env.invoke("service", {"step": "service", "services": [{"namespace": "default", "name": "web"}]})
    listener = env.deps.require_clb().list_listeners(lb_id)[0]
    assert (listener.scheduler, listener.session_expire_s) == ("WRR", 120)
    assert env.counts()["ModifyListener"] == 1
    assert "AppliedTkeServiceConfig" in env.cluster.event_reasons("Service")


def test_invalid_tke_service_config_changes_nothing(env: Env) -> None:
    env.cluster.tke_configs[("default", "bad")] = {
        "spec": {
            "loadBalancer": {
                "l4Listeners": [{"protocol": "TCP", "port": 80, "healthCheck": {"intervalTime": 5, "timeout": 9}}]
            }
        }
    }
    env.cluster.put_service(service(**{"service.cloud.tencent.com/tke-service-config": "bad"}))
    result = env.invoke("service", "service_web")
    assert result["ok"] is False and result["error"] == "ConfigError" and "less than intervalTime" in result["message"]
    assert env.counts() == {} and not env.cluster.services[("default", "web")].finalizers
    assert "InvalidTkeServiceConfig" in env.cluster.event_reasons("Service")
    missing = service(**{"service.cloud.tencent.com/tke-service-config": "nope"})
    env.cluster.put_service(missing)
    assert "does not exist" in env.invoke("service", "service_web")["message"]


def test_port_change_adds_and_removes_listeners(env: Env) -> None:
    lb_id = ensure(env, ("web-1", "10.0.0.1"))
    ports = [ServicePort(name="https", port=443, target_port=8443), ServicePort(name="dns", port=53, protocol="UDP")]
    env.cluster.put_service(env.cluster.services[("default", "web")].model_copy(update={"ports": ports}))
    env.invoke("service", {"step": "service", "services": [{"namespace": "default", "name": "web"}]})
    env.drain()
    listeners = env.deps.require_clb().list_listeners(lb_id)
    assert sorted((lst.protocol, lst.port) for lst in listeners) == [("TCP", 443), ("UDP", 53)]
    assert env.targets(lb_id) == {("10.0.0.1", 8443, 10), ("10.0.0.1", 53, 10)}
    assert {b.listener_id for b in env.deps.store.list_bindings(lb_id=lb_id)} == {lst.listener_id for lst in listeners}


def test_service_deletion_deletes_clb_releases_gates_and_finalizer(env: Env) -> None:
    lb_id = ensure(env, ("web-1", "10.0.0.1"))
    assert env.gate("web-1")[0] == "False"
    env.cluster.delete_service("default", "web")  # finalizer holds it with a deletionTimestamp
    result = env.invoke("service", {"step": "service", "services": [{"namespace": "default", "name": "web"}]})
    assert result["ok"] and result["result"]["services"][0]["deleted"] == [f"CLB {lb_id}"]
    assert env.deps.require_clb().describe_load_balancer(lb_id) is None
    assert ("default", "web") not in env.cluster.services  # finalizer removed -> gone
    status, reason, message = env.gate("web-1")
    assert (status, reason) == ("True", "LoadBalancerNetworkGroupReleased") and "released" in message
    assert env.deps.store.list_bindings() == [] and env.deps.store.list_selectors("default") == []
    # a duplicate deletion event is harmless
    again = env.invoke("service", {"step": "service", "services": [{"namespace": "default", "name": "web"}]})
    assert again["ok"] and env.counts()["DeleteLoadBalancer"] == 1


def test_annotation_removal_on_adopted_clb_keeps_clb_and_foreign_listeners(env: Env) -> None:
    clb = env.deps.require_clb()
    from shared.domain.models import ListenerSpec, LoadBalancerSpec

    existing = clb.create_load_balancer(LoadBalancerSpec(name="shared", tags={"team": "ops"}))
    foreign = clb.create_listener(existing.lb_id, ListenerSpec(port=9000, name="ops-listener"))
    ensure(env, ("web-1", "10.0.0.1"), **{"service.kubernetes.io/tke-existed-lbid": existing.lb_id})
    assert env.lb_id() == existing.lb_id and len(clb.list_listeners(existing.lb_id)) == 2
    svc = env.cluster.services[("default", "web")]
    annotations = {k: v for k, v in svc.annotations.items() if k != "service.cloud.tencent.com/direct-access"}
    env.cluster.put_service(svc.model_copy(update={"annotations": annotations}))
    env.invoke("service", {"step": "service", "services": [{"namespace": "default", "name": "web"}]})
    assert clb.describe_load_balancer(existing.lb_id) is not None
    assert [lst.listener_id for lst in clb.list_listeners(existing.lb_id)] == [foreign]
    assert env.gate("web-1")[0] == "True"
    assert not env.cluster.services[("default", "web")].finalizers


def test_private_clb_with_internal_subnet(env: Env) -> None:
    lb_id = ensure(env, **{"service.kubernetes.io/qcloud-loadbalancer-internal-subnetid": "subnet-aaaa1111"})
    info = env.deps.require_clb().describe_load_balancer(lb_id)
    assert info is not None and info.internal
    assert info.tags["clb-direct-service"] == "default/web" and info.tags["tke-clusterId"] == "cls-test"


def test_two_services_selecting_the_same_pods(env: Env) -> None:
    lb_web = ensure(env, ("web-1", "10.0.0.1"))
    env.cluster.put_service(service("api", ports=[ServicePort(port=8000, target_port=8080)]))
    env.invoke("service", {"step": "service", "services": [{"namespace": "default", "name": "api"}]})
    env.drain()
    lb_api = env.lb_id(name="api")
    assert lb_api != lb_web and env.targets(lb_api) == {("10.0.0.1", 8080, 10)}
    env.set_health(lb_web, "10.0.0.1", 8080)
    env.invoke("flip", "flip_pod")
    status, _, message = env.gate("web-1")
    assert status == "False" and "default/api" in message and "default/web" not in message
    env.set_health(lb_api, "10.0.0.1", 8080)
    env.invoke("flip", "flip_pod")
    assert env.gate("web-1")[0] == "True" and "default/api, default/web" in env.gate("web-1")[2]


def test_fail_open_after_timeout_with_warning(env: Env) -> None:
    ensure(env, ("web-1", "10.0.0.1"), **{"service.cloud.tencent.com/readiness-gate-fail-open-seconds": "120"})
    assert env.gate("web-1")[0] == "False"
    env.clock.advance(10_000)
    env.invoke("flip", "flip_pod")
    assert env.gate("web-1")[:2] == ("True", "LoadBalancerNetworkGroupFailOpen")
    assert "LoadBalancerNetworkGroupFailOpen" in env.cluster.event_reasons("Pod")


FAIL_OPEN = "service.cloud.tencent.com/readiness-gate-fail-open-seconds"


def test_fail_open_fires_on_its_own_deadline(env: Env) -> None:
    """No later event is needed (issue 15 #2): the first False flip schedules a flip at the deadline."""
    ensure(env, ("web-1", "10.0.0.1"), **{FAIL_OPEN: "20"})
    assert env.gate("web-1")[0] == "False"  # bound, but the CLB health check never passes
    due = env.deps.store.schedule_list(limit=10)
    assert any(item.key.startswith("flip:") for item in due), due
    env.drain(delayed=True)  # the timers drain the schedule once its due time has come; nothing else happens
    assert env.gate("web-1")[:2] == ("True", "LoadBalancerNetworkGroupFailOpen")
    warnings = [m for ref, t, r, m in env.cluster.events if t == "Warning" and r == "LoadBalancerNetworkGroupFailOpen"]
    assert len(warnings) == 1 and "20s" in warnings[0]


def test_fail_open_releases_a_global_router_pod_refused_for_the_switch(env: Env) -> None:
    env.cluster.cluster_config = {}
    env.cluster.put_service(service(**{FAIL_OPEN: "20"}))
    env.cluster.put_pod(pod("web-1", "10.0.0.1", annotations={"tke.cloud.tencent.com/networks": "tke-bridge"}))
    assert env.invoke("service", "service_web")["ok"]
    env.drain()
    status, _, message = env.gate("web-1")
    assert status == "False" and "GlobalRouteDirectAccess" in message
    env.drain(delayed=True)
    assert env.gate("web-1")[:2] == ("True", "LoadBalancerNetworkGroupFailOpen")
    assert "GlobalRouteDirectAccess" in env.gate("web-1")[2]  # the release says why the Pod was waiting
    assert env.targets(env.lb_id()) == set()  # released, still not bound: the limit holds


def test_a_foreign_listener_on_the_service_port_of_an_adopted_clb_is_never_written(env: Env) -> None:
    """Issue 15 #1: a port conflict gives the Service a Warning naming the listener, and no binding there."""
    from shared.domain.models import HealthCheck, ListenerSpec, LoadBalancerSpec, Target

    clb = env.deps.require_clb()
    existing = clb.create_load_balancer(LoadBalancerSpec(name="shared", tags={"team": "ops"}))
    spec = ListenerSpec(port=80, name="ops-http", health_check=HealthCheck(interval_s=15))
    foreign = clb.create_listener(existing.lb_id, spec)
    clb.register_targets(existing.lb_id, [Target(listener_id=foreign, ip="10.9.9.9", port=8080)])
    before = clb.list_listeners(existing.lb_id)
    ensure(env, ("web-1", "10.0.0.1"), **{"service.kubernetes.io/tke-existed-lbid": existing.lb_id})
    env.drain()

    assert env.targets(existing.lb_id) == {("10.9.9.9", 8080, 10)}, "nothing registered into the foreign listener"
    assert clb.list_listeners(existing.lb_id) == before, "the foreign listener was not modified"
    assert env.deps.store.list_bindings(lb_id=existing.lb_id) == []
    warnings = [m for ref, t, r, m in env.cluster.events if t == "Warning" and r == "ListenerPortConflict"]
    assert warnings and foreign in warnings[0] and "TCP:80" in warnings[0] and existing.lb_id in warnings[0]
    gate = env.gate("web-1")
    assert gate is None or gate[0] == "False", "not healthy on a port it is not bound on"

    env.cluster.delete_service("default", "web")
    env.invoke("service", {"step": "service", "services": [{"namespace": "default", "name": "web"}]})
    env.drain()
    assert env.targets(existing.lb_id) == {("10.9.9.9", 8080, 10)}
    assert [lst.listener_id for lst in clb.list_listeners(existing.lb_id)] == [foreign]
