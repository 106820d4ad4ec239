"""Our node agent as a client of a real kube-apiserver: nodes, binding, kubelet status, gates, deletion.

The same kubelet and scheduler that serve the in-process simulator run here through `ApiServerStore`,
writing as `system:node:<name>` (Node authorizer + NodeRestriction decide) and `system:kube-scheduler`.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from kubernetes import client

from emulators.controlplane.cluster import RealCluster
from tests.support.polling import eventually

GATE = "cloud.tencent.com/load-balancer-backendgroup-ready"


def _pod(name: str, *, gate: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "terminationGracePeriodSeconds": 2,
        "containers": [{"name": "web", "image": "example/web:1.0", "ports": [{"containerPort": 8080}]}],
    }
    if gate:
        spec["readinessGates"] = [{"conditionType": GATE}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "web"}}, "spec": spec}


def _condition(pod: client.V1Pod, kind: str) -> str | None:
    found = next((c for c in (pod.status.conditions or []) if c.type == kind), None)
    return found.status if found is not None else None


def test_nodes_are_registered_ready_by_the_agent(real_cluster: RealCluster, admin: client.ApiClient) -> None:
    nodes = {n.metadata.name: n for n in client.CoreV1Api(admin).list_node().items}
    assert sorted(nodes) == real_cluster.nodes
    for node in nodes.values():
        assert _condition(node, "Ready") == "True"
        assert any(a.type == "InternalIP" and a.address.startswith("127.") for a in node.status.addresses)


def test_a_pod_is_bound_started_and_served_on_its_loopback_ip(admin: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(admin)
    core.create_namespaced_pod(namespace, _pod("web-1"))

    def running() -> client.V1Pod | None:
        pod = core.read_namespaced_pod("web-1", namespace)
        return pod if _condition(pod, "Ready") == "True" else None

    pod = eventually(running, "web-1 Ready", timeout=90)
    assert pod.spec.node_name.startswith("node-")
    assert pod.status.phase == "Running" and pod.status.pod_ip.startswith("127.")
    assert _condition(pod, "PodScheduled") == "True" and _condition(pod, "ContainersReady") == "True"
    with urllib.request.urlopen(f"http://{pod.status.pod_ip}:8080/", timeout=5) as response:  # noqa: S310
        assert json.loads(response.read())["pod"] == "web-1"


def test_a_readiness_gate_holds_ready_until_its_condition_is_true(admin: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(admin)
    core.create_namespaced_pod(namespace, _pod("gated", gate=True))

    def containers_ready() -> client.V1Pod | None:
        pod = core.read_namespaced_pod("gated", namespace)
        return pod if _condition(pod, "ContainersReady") == "True" else None

    pod = eventually(containers_ready, "gated ContainersReady", timeout=90)
    assert _condition(pod, "Ready") == "False"
    patch = {
        "metadata": {"uid": pod.metadata.uid},
        "status": {"conditions": [{"type": GATE, "status": "True", "reason": "LoadBalancerNetworkGroupReady"}]},
    }
    core.patch_namespaced_pod_status("gated", namespace, patch)
    ready = eventually(
        lambda: (p := core.read_namespaced_pod("gated", namespace)) and _condition(p, "Ready") == "True" and p,
        "gated Ready after the gate condition turned True",
        timeout=60,
    )
    assert _condition(ready, GATE) == "True"  # the kubelet's own patches left our condition alone


def test_a_deleted_pod_is_stopped_and_removed_by_its_node(admin: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(admin)
    core.create_namespaced_pod(namespace, _pod("doomed"))
    pod = eventually(
        lambda: (p := core.read_namespaced_pod("doomed", namespace)) and _condition(p, "Ready") == "True" and p,
        "doomed Ready",
        timeout=90,
    )
    core.delete_namespaced_pod("doomed", namespace)

    def gone() -> bool:
        return not any(p.metadata.name == "doomed" for p in core.list_namespaced_pod(namespace).items)

    eventually(gone, "doomed removed by its kubelet (grace 0 delete as system:node)", timeout=60)
    try:
        urllib.request.urlopen(f"http://{pod.status.pod_ip}:8080/", timeout=2)  # noqa: S310
    except OSError:
        return
    raise AssertionError("the deleted Pod's server still answers")


def test_a_deployment_is_rolled_by_the_real_controllers(admin: client.ApiClient, namespace: str) -> None:
    apps, core = client.AppsV1Api(admin), client.CoreV1Api(admin)
    template = _pod("unused")
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": template["spec"]},
        },
    }
    apps.create_namespaced_deployment(namespace, deployment)

    def available(version: str) -> client.V1Deployment | None:
        current = apps.read_namespaced_deployment("web", namespace)
        status = current.status
        done = (
            status.observed_generation == current.metadata.generation
            and status.updated_replicas == 2
            and status.available_replicas == 2
            and (status.replicas or 0) == 2
        )
        images = {
            p.spec.containers[0].image for p in core.list_namespaced_pod(namespace, label_selector="app=web").items
        }
        return current if done and images == {f"example/web:{version}"} else None

    eventually(lambda: available("1.0"), "web available at 1.0", timeout=120)
    apps.patch_namespaced_deployment(
        "web",
        namespace,
        {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "example/web:2.0"}]}}}},
    )
    eventually(lambda: available("2.0"), "web rolled out to 2.0", timeout=120)
