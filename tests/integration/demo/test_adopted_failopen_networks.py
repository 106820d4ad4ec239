"""Issue 15 against the whole local stack: adopted-CLB port conflicts, fail-open on its own deadline, bridge Pods.

One stack (CLB emulator behind the real SDK, cluster simulator, relay, every function in the local
runtime), one case per Service, each checked through the Kubernetes API and the CLB as a user would:

1. a Service adopting a CLB whose TCP:80 listener someone else created gets a `ListenerPortConflict`
   Warning, and its Pod is never registered into that listener;
2. a Service with `readiness-gate-fail-open-seconds` whose health check can never pass (the target
   port is closed) releases its Pod's gate with the FailOpen Warning, with no other event to trigger it;
3. a Pod on the `tke-bridge` network is a GlobalRouter Pod: refused while `GlobalRouteDirectAccess` is
   absent, with a Warning naming the switch, and never bound;
4. the adopted-CLB Pod's gate is False with the reason `ListenerPortConflict`, and Pods created before
   their Service (so admitted without the gate) get a `ReadinessGateMissing` Warning on the Service;
5. with the switch on, one Service over a VPC-CNI and a bridge Deployment binds both (issue 15 #4).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from demo.stack import LocalStack, StackOptions
from shared.adapters.store_factory import open_store
from shared.adapters.tencent_clb import TencentClbGateway
from shared.domain.models import ListenerSpec, LoadBalancerSpec, Target
from tests.support.polling import eventually

NS = "default"
ENI = {"tke.cloud.tencent.com/networks": "tke-route-eni"}


def _service(name: str, port: int, target_port: int | str, **annotations: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "annotations": {"service.cloud.tencent.com/direct-access": "true", **annotations}},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": name},
            "ports": [{"name": "http", "port": port, "targetPort": target_port, "protocol": "TCP"}],
        },
    }


def _deployment(name: str, pod_annotations: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": pod_annotations},
                "spec": {
                    "containers": [{"name": "app", "image": "example/web:v1", "ports": [{"containerPort": 8080}]}]
                },
            },
        },
    }


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    run_dir: Path = tmp_path_factory.mktemp("issue15")
    with LocalStack(StackOptions(run_dir=run_dir, health_poll_s=2.0, reconcile_s=600.0)) as stack:
        yield stack


@pytest.fixture(scope="module")
def core(stack: LocalStack) -> Iterator[client.CoreV1Api]:
    api = config.new_client_from_config(config_file=str(stack.kubeconfig))
    yield client.CoreV1Api(api)
    api.close()


def _apply(stack: LocalStack, core: client.CoreV1Api, service: dict[str, Any], pod_annotations: dict[str, str]) -> None:
    api = core.api_client
    name = service["metadata"]["name"]
    core.create_namespaced_service(NS, service)

    store = open_store(stack.env["CLB_DIRECT_STORE_URL"])

    def indexed() -> bool:
        return any(entry.service == name for entry in store.list_selectors(NS))

    # The admission webhook gates Pods by the selector index the service step writes (once a namespace's
    # index is warm it is not re-listed): wait for the entry, as a user's Pods created in the same second
    # as their Service could otherwise be admitted without the gate.
    eventually(indexed, f"Service {name} in the selector index")
    client.AppsV1Api(api).create_namespaced_deployment(NS, _deployment(name, pod_annotations))


def _events(core: client.CoreV1Api, reason: str, name_prefix: str) -> list[str]:
    return [
        e.message or ""
        for e in core.list_namespaced_event(NS).items
        if e.reason == reason and (e.involved_object.name or "").startswith(name_prefix)
    ]


def _pod(core: client.CoreV1Api, app: str) -> Any:
    pods = core.list_namespaced_pod(NS, label_selector=f"app={app}").items
    return pods[0] if len(pods) == 1 and pods[0].status.pod_ip else None


def _admission_failures(stack: LocalStack) -> list[str]:
    """The admission function's failed reviews in the stack's function log (why a Pod has no gate)."""
    lines = stack.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    return [line for line in lines if '"admission"' in line and ('"error"' in line or "failed" in line)][-5:]


def _gate(pod: Any) -> Any:
    return next(
        (c for c in pod.status.conditions or [] if c.type == "cloud.tencent.com/load-balancer-backendgroup-ready"),
        None,
    )


def test_a_foreign_listener_on_an_adopted_clb_is_never_written(stack: LocalStack, core: client.CoreV1Api) -> None:
    assert stack.settings is not None
    clb = TencentClbGateway.from_settings(stack.settings)
    shared = clb.create_load_balancer(LoadBalancerSpec(name="ops-shared", tags={"team": "ops"}))
    foreign = clb.create_listener(shared.lb_id, ListenerSpec(port=80, name="ops-http"))
    clb.register_targets(shared.lb_id, [Target(listener_id=foreign, ip="10.9.9.9", port=8080)])
    _apply(stack, core, _service("adopt", 80, 8080, **{"service.kubernetes.io/tke-existed-lbid": shared.lb_id}), ENI)

    warning = eventually(lambda: _events(core, "ListenerPortConflict", "adopt"), "the port-conflict Warning")
    assert foreign in warning[0] and "TCP:80" in warning[0]
    pod = eventually(lambda: _pod(core, "adopt"), "the adopt Pod with an IP")
    stack.wait_idle()
    targets = {(t.listener_id, t.ip, t.port) for t in clb.list_targets(shared.lb_id)}
    assert targets == {(foreign, "10.9.9.9", 8080)}, f"{pod.status.pod_ip} must never join the foreign listener"
    assert [lst.name for lst in clb.list_listeners(shared.lb_id)] == ["ops-http"]
    gate = eventually(lambda: _gate(_pod(core, "adopt")), "the adopt Pod's gate condition saying why")
    assert (gate.status, gate.reason) == ("False", "ListenerPortConflict") and foreign in gate.message


def test_pods_created_before_their_service_get_a_gate_missing_warning(
    stack: LocalStack, core: client.CoreV1Api
) -> None:
    """The Deployment first, then its Service: the Pods were admitted without the gate, and say so."""
    apps = client.AppsV1Api(core.api_client)
    apps.create_namespaced_deployment(NS, _deployment("early", ENI))
    pod = eventually(lambda: _pod(core, "early"), "the early Pod with an IP")
    assert not pod.spec.readiness_gates
    core.create_namespaced_service(NS, _service("early", 83, 8080))
    warning = eventually(lambda: _events(core, "ReadinessGateMissing", "early"), "the ReadinessGateMissing Warning")
    assert pod.metadata.name in warning[0] and "rollout restart" in warning[0]


def test_fail_open_releases_a_pod_that_never_turns_healthy(stack: LocalStack, core: client.CoreV1Api) -> None:
    fail_open = {"service.cloud.tencent.com/readiness-gate-fail-open-seconds": "8"}
    _apply(stack, core, _service("failopen", 82, 9999, **fail_open), ENI)  # 9999: nothing listens there

    def released() -> Any:
        pod = _pod(core, "failopen")
        gate = _gate(pod) if pod is not None else None
        return gate if gate is not None and gate.status == "True" else None

    # The reconcile timer is 10 min away and the health check has settled on Dead (3 x 5 s) before the
    # 20 s are up: only the fail-open deadline itself can release the gate in time.
    pod = eventually(lambda: _pod(core, "failopen"), "the failopen Pod with an IP")
    gates = [g.condition_type for g in pod.spec.readiness_gates or []]
    assert gates, f"the Pod was admitted without the gate; admission said: {_admission_failures(stack)}"
    gate = eventually(released, "the gate released by fail-open", timeout=60)
    assert gate.reason == "LoadBalancerNetworkGroupFailOpen"
    assert eventually(lambda: _events(core, "LoadBalancerNetworkGroupFailOpen", "failopen"), "the FailOpen Warning")


def test_a_bridge_network_pod_is_global_router_and_refused_without_the_switch(
    stack: LocalStack, core: client.CoreV1Api
) -> None:
    _apply(stack, core, _service("bridge", 81, 8080), {"tke.cloud.tencent.com/networks": "tke-bridge"})
    warning = eventually(lambda: _events(core, "DirectAccessLimit", "bridge"), "the GlobalRouter Warning")
    assert "GlobalRouteDirectAccess" in warning[0]
    pod = eventually(lambda: _pod(core, "bridge"), "the bridge Pod with an IP")
    service = core.read_namespaced_service("bridge", NS)
    lb_id = (service.metadata.annotations or {}).get("service.kubernetes.io/loadbalance-id")
    assert lb_id and stack.settings is not None
    stack.wait_idle()
    ips = {t.ip for t in TencentClbGateway.from_settings(stack.settings).list_targets(lb_id)}
    assert pod.status.pod_ip not in ips


def test_one_service_over_a_vpc_cni_and_a_bridge_deployment_binds_both(
    stack: LocalStack, core: client.CoreV1Api
) -> None:
    """Issue 15 #4 as decided (docs/network-modes.md): with the switch on, one Service may select a VPC-CNI
    and a GlobalRouter workload; both are bound and nothing is refused. Runs last: it sets the switch."""
    switch = {"metadata": {"name": "tke-service-controller-config"}, "data": {"GlobalRouteDirectAccess": "true"}}
    core.create_namespaced_config_map("kube-system", switch)
    _apply(stack, core, _service("mixed", 84, 8080), ENI)  # Deployment "mixed": VPC-CNI
    bridge = _deployment("mixed-gr", {"tke.cloud.tencent.com/networks": "tke-bridge"})
    bridge["spec"]["selector"]["matchLabels"] = bridge["spec"]["template"]["metadata"]["labels"] = {
        "app": "mixed",
        "network": "bridge",
    }
    client.AppsV1Api(core.api_client).create_namespaced_deployment(NS, bridge)

    def ips() -> set[str] | None:
        pods = core.list_namespaced_pod(NS, label_selector="app=mixed").items
        found = {p.status.pod_ip for p in pods if p.status.pod_ip}
        return found if len(found) == 2 else None

    pod_ips = eventually(ips, "both mixed Pods with an IP")
    lb_id = eventually(
        lambda: core.read_namespaced_service("mixed", NS).metadata.annotations.get(
            "service.kubernetes.io/loadbalance-id"
        ),
        "the mixed Service's CLB",
    )
    assert stack.settings is not None
    clb = TencentClbGateway.from_settings(stack.settings)
    eventually(lambda: pod_ips <= {t.ip for t in clb.list_targets(lb_id)}, "both Pods registered")
    assert _events(core, "DirectAccessLimit", "mixed") == []
