"""One contract for the `Cluster` port, run on the suite's fake and on the real adapter.

Every test runs twice: on `FakeCluster` (what the unit, functional and chaos tests use) and on
`KubernetesCluster` through the real `kubernetes` client against the cluster simulator's API server. A
behaviour the steps rely on that the fake models differently from the API server fails here, so a green
functional test cannot rest on a kinder fake. Each world seeds objects its own way (the fake directly, the
simulator through its object store, as controllers and the kubelet would) and is read only through the port.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest

from emulators.cluster.server import ClusterApiServer
from emulators.cluster.simulator import version_info
from emulators.cluster.store import ObjectStore
from shared.adapters.kubernetes_api import KubernetesCluster
from shared.clock import FakeClock
from shared.config import Settings
from shared.domain.models import (
    CLUSTER_CONFIG_NAME,
    CLUSTER_CONFIG_NAMESPACE,
    GATE_CONDITION_TYPE,
    GATE_READY_REASON,
    ObjectRef,
    PodCondition,
    PodInfo,
    ServiceInfo,
    ServicePort,
)
from shared.ports import Cluster
from tests.support.fakes import FakeCluster

NS = "shop"
GATE_TRUE = PodCondition(type=GATE_CONDITION_TYPE, status="True", reason=GATE_READY_REASON, message="bound")
GATE_FALSE = PodCondition(type=GATE_CONDITION_TYPE, status="False", reason="Binding", message="waiting")


class World(Protocol):
    """A cluster to seed (as the world would change it) and to read through the `Cluster` port."""

    cluster: Cluster

    def add_pod(self, name: str, *, ip: str | None, labels: Mapping[str, str]) -> str:
        """A running Pod with ContainersReady and the gate; returns its UID."""
        ...

    def add_service(
        self, name: str, *, selector: Mapping[str, str], annotations: Mapping[str, str] | None = None
    ) -> None: ...

    def delete_service(self, name: str) -> None:
        """Delete as a user would (the API server keeps it while finalizers remain)."""
        ...

    def delete_pod(self, name: str) -> None: ...

    def set_cluster_config(self, data: Mapping[str, str]) -> None: ...

    def add_tke_service_config(self, name: str, spec: dict[str, Any]) -> None: ...

    def event_reasons(self) -> list[tuple[str, str, str]]:
        """(kind, type, reason) of every Event emitted, any order."""
        ...


@dataclass
class FakeWorld:
    cluster: FakeCluster = field(default_factory=lambda: FakeCluster(version=(1, 28)))

    def __post_init__(self) -> None:
        self.cluster.cluster_config = {}

    def add_pod(self, name: str, *, ip: str | None, labels: Mapping[str, str]) -> str:
        uid = str(uuid.uuid4())
        self.cluster.put_pod(
            PodInfo(
                namespace=NS,
                name=name,
                uid=uid,
                labels=dict(labels),
                ip=ip,
                phase="Running",
                containers_ready=True,
                readiness_gates=[GATE_CONDITION_TYPE],
                conditions=[
                    PodCondition(type="ContainersReady", status="True", last_transition_time="2024-01-01T00:00:00Z"),
                    PodCondition(type="Ready", status="False", last_transition_time="2024-01-01T00:00:00Z"),
                ],
            )
        )
        return uid

    def add_service(
        self, name: str, *, selector: Mapping[str, str], annotations: Mapping[str, str] | None = None
    ) -> None:
        port = ServicePort(name="http", port=80, target_port="http", protocol="TCP")
        self.cluster.put_service(
            ServiceInfo(
                namespace=NS,
                name=name,
                uid=str(uuid.uuid4()),
                type="LoadBalancer",
                selector=dict(selector),
                annotations=dict(annotations or {}),
                ports=[port],
            )
        )

    def delete_service(self, name: str) -> None:
        self.cluster.delete_service(NS, name)

    def delete_pod(self, name: str) -> None:
        self.cluster.remove_pod(NS, name)

    def set_cluster_config(self, data: Mapping[str, str]) -> None:
        self.cluster.cluster_config = dict(data)

    def add_tke_service_config(self, name: str, spec: dict[str, Any]) -> None:
        self.cluster.tke_configs[(NS, name)] = {
            "apiVersion": "cloud.tencent.com/v1alpha1",
            "kind": "TkeServiceConfig",
            "metadata": {"name": name, "namespace": NS},
            "spec": spec,
        }

    def event_reasons(self) -> list[tuple[str, str, str]]:
        return [(ref.kind, type_, reason) for ref, type_, reason, _ in self.cluster.events]


@dataclass
class SimulatorWorld:
    store: ObjectStore
    cluster: KubernetesCluster

    def add_pod(self, name: str, *, ip: str | None, labels: Mapping[str, str]) -> str:
        created = self.store.create(
            "pods",
            NS,
            {
                "metadata": {"name": name, "labels": dict(labels)},
                "spec": {
                    "containers": [
                        {"name": "app", "image": "nginx", "ports": [{"name": "http", "containerPort": 8080}]}
                    ],
                    "readinessGates": [{"conditionType": GATE_CONDITION_TYPE}],
                },
            },
        )

        def running(obj: dict[str, Any]) -> dict[str, Any]:  # what the kubelet reports
            obj["status"] = {
                "phase": "Running",
                "conditions": [
                    {"type": "ContainersReady", "status": "True", "lastTransitionTime": "2024-01-01T00:00:00Z"},
                    {"type": "Ready", "status": "False", "lastTransitionTime": "2024-01-01T00:00:00Z"},
                ],
                **({"podIP": ip} if ip else {}),
            }
            return obj

        assert self.store.mutate("pods", NS, name, running, subresource="status") is not None
        return str(created["metadata"]["uid"])

    def add_service(
        self, name: str, *, selector: Mapping[str, str], annotations: Mapping[str, str] | None = None
    ) -> None:
        self.store.create(
            "services",
            NS,
            {
                "metadata": {"name": name, "annotations": dict(annotations or {})},
                "spec": {
                    "type": "LoadBalancer",
                    "selector": dict(selector),
                    "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
                },
            },
        )

    def delete_service(self, name: str) -> None:
        self.store.delete("services", NS, name)

    def delete_pod(self, name: str) -> None:
        self.store.delete("pods", NS, name, grace_period_seconds=0)

    def set_cluster_config(self, data: Mapping[str, str]) -> None:
        self.store.create(
            "configmaps",
            CLUSTER_CONFIG_NAMESPACE,
            {"metadata": {"name": CLUSTER_CONFIG_NAME}, "data": dict(data)},
        )

    def add_tke_service_config(self, name: str, spec: dict[str, Any]) -> None:
        self.store.create(
            "tkeserviceconfigs",
            NS,
            {"apiVersion": "cloud.tencent.com/v1alpha1", "kind": "TkeServiceConfig", "metadata": {"name": name}},
        )

        def with_spec(obj: dict[str, Any]) -> dict[str, Any]:
            obj["spec"] = spec
            return obj

        self.store.mutate("tkeserviceconfigs", NS, name, with_spec)

    def event_reasons(self) -> list[tuple[str, str, str]]:
        events = self.store.list("events", NS)[0]
        return [(e["involvedObject"]["kind"], e["type"], e["reason"]) for e in events]


@pytest.fixture(params=["fake", "simulator"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    if request.param == "fake":
        yield FakeWorld()
        return
    store = ObjectStore(history_size=200)
    server = ClusterApiServer.self_signed(store, version=version_info("1.28.3")).start()
    kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
    settings = Settings.load({}, kubeconfig=str(kubeconfig), store_url="memory://")
    cluster = KubernetesCluster.from_settings(settings, clock=FakeClock())
    try:
        yield SimulatorWorld(store, cluster)
    finally:
        cluster.close()
        server.stop()


def _names(items: Sequence[PodInfo] | Sequence[ServiceInfo]) -> list[str]:
    return sorted(item.name for item in items)


# ---------------------------------------------------------------------------------------------- reads


def test_server_version(world: World) -> None:
    assert world.cluster.server_version() == (1, 28)


def test_pods_by_name_selector_and_ip(world: World) -> None:
    uid = world.add_pod("web-1", ip="10.0.0.5", labels={"app": "web", "tier": "front"})
    world.add_pod("web-2", ip="10.0.0.6", labels={"app": "web"})
    world.add_pod("db-1", ip="10.0.0.7", labels={"app": "db"})
    world.add_pod("pending", ip=None, labels={"app": "web"})

    pod = world.cluster.get_pod(NS, "web-1")
    assert pod is not None and pod.uid == uid and pod.ip == "10.0.0.5" and pod.containers_ready
    assert pod.labels == {"app": "web", "tier": "front"} and pod.readiness_gates == [GATE_CONDITION_TYPE]
    assert world.cluster.get_pod(NS, "absent") is None
    assert _names(world.cluster.list_pods(NS, {"app": "web"})) == ["pending", "web-1", "web-2"]
    assert _names(world.cluster.list_pods(NS, {"app": "web", "tier": "front"})) == ["web-1"]
    assert world.cluster.list_pods(NS, {}) == [], "an empty selector selects nothing"
    assert world.cluster.list_pods("elsewhere", {"app": "web"}) == []
    assert _names(world.cluster.list_pods_with_ip("10.0.0.6")) == ["web-2"]
    assert world.cluster.list_pods_with_ip("10.9.9.9") == []


def test_services_by_name_and_namespace(world: World) -> None:
    world.add_service("web", selector={"app": "web"}, annotations={"service.cloud.tencent.com/direct-access": "true"})
    world.add_service("db", selector={"app": "db"})

    service = world.cluster.get_service(NS, "web")
    assert service is not None and service.selector == {"app": "web"} and service.type == "LoadBalancer"
    assert service.annotations["service.cloud.tencent.com/direct-access"] == "true"
    assert [(p.port, p.target_port, p.protocol) for p in service.ports] == [(80, "http", "TCP")]
    assert world.cluster.get_service(NS, "absent") is None
    assert _names(world.cluster.list_services(NS)) == ["db", "web"]
    assert _names(world.cluster.list_services()) == ["db", "web"]
    assert world.cluster.list_services("elsewhere") == []


def test_cluster_config_and_tke_service_config(world: World) -> None:
    assert world.cluster.get_cluster_config() == {}
    assert world.cluster.get_tke_service_config(NS, "web-clb") is None
    world.set_cluster_config({"GlobalRouteDirectAccess": "true"})
    world.add_tke_service_config("web-clb", {"loadBalancer": {"l4Listeners": [{"protocol": "TCP", "port": 80}]}})
    assert world.cluster.get_cluster_config() == {"GlobalRouteDirectAccess": "true"}
    config = world.cluster.get_tke_service_config(NS, "web-clb")
    assert config is not None and config["spec"]["loadBalancer"]["l4Listeners"] == [{"protocol": "TCP", "port": 80}]


# ---------------------------------------------------------------------------------------------- writes


def test_pod_condition_write_skips_no_ops_and_checks_the_uid(world: World) -> None:
    world.add_pod("web-1", ip="10.0.0.5", labels={"app": "web"})
    pod = world.cluster.get_pod(NS, "web-1")
    assert pod is not None

    assert world.cluster.set_pod_condition(pod, GATE_FALSE) is True
    assert world.cluster.set_pod_condition(pod, GATE_FALSE) is False, "an unchanged condition is not written"
    assert world.cluster.set_pod_condition(pod, GATE_TRUE) is True
    live = world.cluster.get_pod(NS, "web-1")
    assert live is not None
    gate = live.condition(GATE_CONDITION_TYPE)
    assert gate is not None and (gate.status, gate.reason, gate.message) == ("True", GATE_READY_REASON, "bound")
    assert live.condition("ContainersReady") is not None, "other conditions are kept"

    stale = pod.model_copy(update={"uid": "another-incarnation"})
    assert world.cluster.set_pod_condition(stale, GATE_FALSE) is False, "a Pod re-created under the name is not ours"
    world.delete_pod("web-1")
    assert world.cluster.set_pod_condition(pod, GATE_FALSE) is False, "a vanished Pod is benign"


def test_transition_time_moves_only_when_the_status_flips(world: World) -> None:
    world.add_pod("web-1", ip="10.0.0.5", labels={"app": "web"})
    pod = world.cluster.get_pod(NS, "web-1")
    assert pod is not None

    def gate_time() -> str | None:
        live = world.cluster.get_pod(NS, "web-1")
        condition = live.condition(GATE_CONDITION_TYPE) if live is not None else None
        return condition.last_transition_time if condition is not None else None

    world.cluster.set_pod_condition(pod, GATE_FALSE.model_copy(update={"last_transition_time": "2024-01-01T00:00:05Z"}))
    assert gate_time() == "2024-01-01T00:00:05Z"
    later = GATE_FALSE.model_copy(update={"message": "still waiting", "last_transition_time": "2024-01-01T00:01:00Z"})
    assert world.cluster.set_pod_condition(pod, later) is True
    assert gate_time() == "2024-01-01T00:00:05Z", "same status: the transition time stays"
    flipped = GATE_TRUE.model_copy(update={"last_transition_time": "2024-01-01T00:02:00Z"})
    assert world.cluster.set_pod_condition(pod, flipped) is True
    assert gate_time() == "2024-01-01T00:02:00Z"


def test_service_metadata_finalizers_hold_a_deleted_service(world: World) -> None:
    world.add_service("web", selector={"app": "web"})
    world.cluster.patch_service_metadata(
        NS, "web", annotations={"service.kubernetes.io/loadbalance-id": "lb-1"}, add_finalizers=["clb-direct/cleanup"]
    )
    service = world.cluster.get_service(NS, "web")
    assert service is not None and service.finalizers == ["clb-direct/cleanup"]
    assert service.annotations.get("service.kubernetes.io/loadbalance-id") == "lb-1"
    world.cluster.patch_service_metadata(NS, "web", annotations={"service.kubernetes.io/loadbalance-id": None})
    service = world.cluster.get_service(NS, "web")
    assert service is not None and "service.kubernetes.io/loadbalance-id" not in service.annotations

    world.delete_service("web")
    held = world.cluster.get_service(NS, "web")
    assert held is not None and held.deletion_timestamp is not None, "the finalizer holds the Service"
    world.cluster.patch_service_metadata(NS, "web", remove_finalizers=["clb-direct/cleanup"])
    assert world.cluster.get_service(NS, "web") is None, "removing the last finalizer lets it go"


def test_load_balancer_status(world: World) -> None:
    world.add_service("web", selector={"app": "web"})
    world.cluster.set_service_load_balancer_status(NS, "web", ["10.1.0.9"])
    service = world.cluster.get_service(NS, "web")
    assert service is not None and service.ingress_ips == ["10.1.0.9"]


def test_events_are_recorded_on_their_object(world: World) -> None:
    world.add_service("web", selector={"app": "web"})
    world.cluster.emit_event(
        ObjectRef(kind="Service", namespace=NS, name="web"), type="Warning", reason="Q", message="m"
    )
    world.cluster.emit_event(ObjectRef(kind="Pod", namespace=NS, name="web-1"), type="Normal", reason="B", message="m")
    assert sorted(world.event_reasons()) == [("Pod", "Normal", "B"), ("Service", "Warning", "Q")]


def test_webhook_configuration_create_then_replace(world: World) -> None:
    name = "clb-direct-readiness-gate"
    assert world.cluster.get_mutating_webhook_configuration(name) is None
    body: dict[str, Any] = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": "readiness-gate.clb-direct.cloud.tencent.com",
                "clientConfig": {"url": "https://example.invalid/admission"},
                "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Ignore",
            }
        ],
    }
    world.cluster.apply_mutating_webhook_configuration(body)
    body["webhooks"][0]["failurePolicy"] = "Fail"
    world.cluster.apply_mutating_webhook_configuration(body)
    live = world.cluster.get_mutating_webhook_configuration(name)
    assert live is not None and live["webhooks"][0]["failurePolicy"] == "Fail"
    assert live["webhooks"][0]["clientConfig"]["url"] == "https://example.invalid/admission"


def test_secrets_roundtrip_and_replace(world: World) -> None:
    assert world.cluster.get_secret("kube-system", "clb-direct-webhook-tls") is None
    world.cluster.apply_secret("kube-system", "clb-direct-webhook-tls", {"tls.crt": "CERT", "tls.key": "KEY"})
    world.cluster.apply_secret("kube-system", "clb-direct-webhook-tls", {"tls.crt": "CERT2", "tls.key": "KEY2"})
    assert world.cluster.get_secret("kube-system", "clb-direct-webhook-tls") == {"tls.crt": "CERT2", "tls.key": "KEY2"}
