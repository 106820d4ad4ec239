"""KubernetesCluster through the real `kubernetes` client against the cluster simulator's API server."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from kubernetes import client, config

from emulators.cluster.server import ClusterApiServer
from emulators.cluster.simulator import version_info
from emulators.cluster.store import ObjectStore
from shared.adapters.kubernetes_api import KubernetesCluster
from shared.config import Settings
from shared.domain.errors import ConfigError, PermanentError, RetryableError
from shared.domain.models import GATE_CONDITION_TYPE, GATE_READY_REASON, ObjectRef, PodCondition
from tests.integration.adapters.conftest import Sim

GATE_TRUE = PodCondition(type=GATE_CONDITION_TYPE, status="True", reason=GATE_READY_REASON, message="bound")
GATE_FALSE = PodCondition(type=GATE_CONDITION_TYPE, status="False", reason="Binding", message="waiting")


def conditions(sim: Sim, name: str) -> dict[str, dict[str, Any]]:
    pod = sim.store.get("pods", "default", name)
    assert pod is not None
    return {c["type"]: c for c in pod["status"]["conditions"]}


def test_server_version_parses_managed_minor(tmp_path: Any) -> None:
    store = ObjectStore()
    server = ClusterApiServer.self_signed(store, version={**version_info("1.28.3"), "minor": "28+"}).start()
    try:
        kubeconfig = server.write_kubeconfig(tmp_path / "kc")
        cluster = KubernetesCluster.from_settings(Settings.load({}, kubeconfig=str(kubeconfig)))
        assert cluster.server_version() == (1, 28)
        cluster.close()
    finally:
        server.stop()


def test_missing_kubeconfig_is_a_config_error(tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="CLB_DIRECT_KUBECONFIG"):
        KubernetesCluster.from_settings(Settings.load({}, kubeconfig=str(tmp_path / "absent")))


def test_reads_map_pods_services_configs(sim: Sim) -> None:
    sim.pod("web-1", ip="10.0.0.5")
    sim.pod("other", labels={"app": "db"})
    sim.service(annotations={"service.cloud.tencent.com/direct-access": "true"}, finalizers=["keep"])
    sim.store.create(
        "configmaps",
        "kube-system",
        {"metadata": {"name": "tke-service-controller-config"}, "data": {"GlobalRouteDirectAccess": "true"}},
    )
    sim.store.create(
        "tkeserviceconfigs",
        "default",
        {
            "apiVersion": "cloud.tencent.com/v1alpha1",
            "kind": "TkeServiceConfig",
            "metadata": {"name": "web-clb"},
            "spec": {"loadBalancer": {"l4Listeners": [{"protocol": "TCP", "port": 80}]}},
        },
    )
    pod = sim.cluster.get_pod("default", "web-1")
    assert pod is not None and pod.ip == "10.0.0.5" and pod.containers_ready and not pod.ready
    assert pod.readiness_gates == [GATE_CONDITION_TYPE] and pod.container_ports[0].name == "http"
    assert [p.name for p in sim.cluster.list_pods("default", {"app": "web"})] == ["web-1"]
    assert sim.cluster.list_pods("default", {}) == []
    assert sim.cluster.get_pod("default", "nope") is None
    svc = sim.cluster.get_service("default", "web")
    assert svc is not None and svc.is_direct_access and svc.finalizers == ["keep"]
    assert svc.ports[0].target_port == "http"
    assert [s.name for s in sim.cluster.list_services()] == ["web"]
    assert [s.name for s in sim.cluster.list_services("default")] == ["web"]
    assert sim.cluster.list_services("empty") == []
    assert sim.cluster.get_cluster_config() == {"GlobalRouteDirectAccess": "true"}
    tsc = sim.cluster.get_tke_service_config("default", "web-clb")
    assert tsc is not None and tsc["spec"]["loadBalancer"]["l4Listeners"][0]["port"] == 80
    assert sim.cluster.get_tke_service_config("default", "absent") is None


def test_list_pods_with_ip_filters_by_pod_ip(sim: Sim) -> None:
    sim.pod("web-1", ip="10.0.0.5")
    sim.pod("web-2", ip="10.0.0.6", labels={})
    assert [p.name for p in sim.cluster.list_pods_with_ip("10.0.0.6")] == ["web-2"]
    assert sim.cluster.list_pods_with_ip("10.9.9.9") == []


def test_gate_condition_set_keeps_transition_time_until_status_flips(sim: Sim) -> None:
    sim.pod("web-1")
    pod = sim.cluster.get_pod("default", "web-1")
    assert pod is not None
    assert sim.cluster.set_pod_condition(pod, GATE_FALSE)
    first = conditions(sim, "web-1")[GATE_CONDITION_TYPE]
    assert first["status"] == "False" and first["reason"] == "Binding"
    assert set(conditions(sim, "web-1")) == {"ContainersReady", "Ready", GATE_CONDITION_TYPE}

    assert not sim.cluster.set_pod_condition(pod, GATE_FALSE)  # no-op skipped
    sim.clock.advance(60)
    assert sim.cluster.set_pod_condition(pod, GATE_FALSE.model_copy(update={"message": "still waiting"}))
    second = conditions(sim, "web-1")[GATE_CONDITION_TYPE]
    assert second["message"] == "still waiting" and second["lastTransitionTime"] == first["lastTransitionTime"]

    sim.clock.advance(60)
    assert sim.cluster.set_pod_condition(pod, GATE_TRUE)
    third = conditions(sim, "web-1")[GATE_CONDITION_TYPE]
    assert third["status"] == "True" and third["lastTransitionTime"] > first["lastTransitionTime"]


def test_gate_on_vanished_or_replaced_pod_is_benign(sim: Sim) -> None:
    sim.pod("web-1")
    pod = sim.cluster.get_pod("default", "web-1")
    assert pod is not None
    sim.store.delete("pods", "default", "web-1", grace_period_seconds=0)
    assert not sim.cluster.set_pod_condition(pod, GATE_TRUE)
    sim.pod("web-1")  # same name, new UID
    assert not sim.cluster.set_pod_condition(pod, GATE_TRUE)
    assert GATE_CONDITION_TYPE not in conditions(sim, "web-1")


def test_gate_patch_retries_after_a_concurrent_status_write(sim: Sim, monkeypatch: pytest.MonkeyPatch) -> None:
    sim.pod("web-1")
    pod = sim.cluster.get_pod("default", "web-1")
    assert pod is not None
    core = sim.cluster._core
    original = core.read_namespaced_pod_status
    calls = {"n": 0}

    def read_then_race(name: str, namespace: str, **kw: Any) -> Any:
        live = original(name, namespace, **kw)
        calls["n"] += 1
        if calls["n"] == 1:  # kubelet writes between our read and our patch -> our RV is stale

            def touch(obj: dict[str, Any]) -> dict[str, Any]:
                obj["status"]["phase"] = "Running"
                obj["status"].setdefault("hostIP", "192.168.0.1")
                return obj

            sim.store.mutate("pods", "default", "web-1", touch, subresource="status")
        return live

    monkeypatch.setattr(core, "read_namespaced_pod_status", read_then_race)
    assert sim.cluster.set_pod_condition(pod, GATE_TRUE)
    assert calls["n"] == 2
    assert conditions(sim, "web-1")[GATE_CONDITION_TYPE]["status"] == "True"


def test_service_annotations_finalizers_and_status(sim: Sim) -> None:
    sim.service(annotations={"old": "x", "keep": "y"}, finalizers=["other.io/f"])
    sim.cluster.patch_service_metadata(
        "default",
        "web",
        annotations={"service.kubernetes.io/loadbalance-id": "lb-1", "old": None},
        add_finalizers=["clb-direct/cleanup"],
    )
    meta = sim.store.get("services", "default", "web")["metadata"]  # type: ignore[index]
    assert meta["annotations"] == {"keep": "y", "service.kubernetes.io/loadbalance-id": "lb-1"}
    assert meta["finalizers"] == ["other.io/f", "clb-direct/cleanup"]
    rv = meta["resourceVersion"]
    sim.cluster.patch_service_metadata(
        "default", "web", annotations={"keep": "y"}, add_finalizers=["clb-direct/cleanup"]
    )
    assert sim.store.get("services", "default", "web")["metadata"]["resourceVersion"] == rv  # type: ignore[index]
    sim.cluster.patch_service_metadata("default", "web", remove_finalizers=["clb-direct/cleanup"])
    assert sim.store.get("services", "default", "web")["metadata"]["finalizers"] == ["other.io/f"]  # type: ignore[index]
    sim.cluster.patch_service_metadata("default", "gone", remove_finalizers=["clb-direct/cleanup"])

    sim.cluster.set_service_load_balancer_status("default", "web", ["10.0.0.9"])
    svc = sim.cluster.get_service("default", "web")
    assert svc is not None and svc.ingress_ips == ["10.0.0.9"]


def test_repeated_events_are_aggregated(sim: Sim) -> None:
    ref = ObjectRef(kind="Pod", namespace="default", name="web-1", uid="u-1")
    for _ in range(3):
        sim.cluster.emit_event(ref, type="Warning", reason="BackendQuota", message="quota 200 reached")
    sim.cluster.emit_event(ref, type="Normal", reason="Bound", message="bound on lbl-1")
    events = sorted(sim.store.list("events", "default")[0], key=lambda e: e["reason"])
    assert [(e["reason"], e["count"]) for e in events] == [("BackendQuota", 3), ("Bound", 1)]
    assert events[0]["involvedObject"]["uid"] == "u-1" and events[0]["source"]["component"] == "clb-direct"
    sim.clock.advance(3600)
    sim.cluster.emit_event(ref, type="Warning", reason="BackendQuota", message="quota 200 reached")
    assert len(sim.store.list("events", "default")[0]) == 3


def test_event_failure_never_raises(sim: Sim) -> None:
    sim.server.stop()
    sim.cluster.emit_event(
        ObjectRef(kind="Service", namespace="default", name="web"), type="Normal", reason="R", message="m"
    )


def test_webhook_configuration_create_then_replace(sim: Sim) -> None:
    body: dict[str, Any] = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "clb-direct-readiness-gate"},
        "webhooks": [
            {
                "name": "gate.clb-direct.io",
                "clientConfig": {"url": "https://127.0.0.1:8443/admission", "caBundle": "Q0E="},
                "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "failurePolicy": "Ignore",
            }
        ],
    }
    assert sim.cluster.get_mutating_webhook_configuration("clb-direct-readiness-gate") is None
    sim.cluster.apply_mutating_webhook_configuration(body)
    body["webhooks"][0]["clientConfig"]["caBundle"] = "TkVX"
    sim.cluster.apply_mutating_webhook_configuration(body)
    live = sim.cluster.get_mutating_webhook_configuration("clb-direct-readiness-gate")
    assert live is not None and live["webhooks"][0]["clientConfig"]["caBundle"] == "TkVX"


def test_secrets_round_trip_base64(sim: Sim) -> None:
    assert sim.cluster.get_secret("kube-system", "tls") is None
    sim.cluster.apply_secret("kube-system", "tls", {"tls.crt": "CERT", "tls.key": "KEY"})
    assert sim.store.get("secrets", "kube-system", "tls")["data"]["tls.crt"] == "Q0VSVA=="  # type: ignore[index]
    sim.cluster.apply_secret("kube-system", "tls", {"tls.crt": "NEW", "tls.key": "KEY2"})
    assert sim.cluster.get_secret("kube-system", "tls") == {"tls.crt": "NEW", "tls.key": "KEY2"}


def test_api_errors_are_typed(sim: Sim) -> None:
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(sim.kubeconfig), client_configuration=configuration)
    configuration.api_key = {"BearerToken": "Bearer wrong-token"}
    configuration.refresh_api_key_hook = None  # the kubeconfig loader would restore the real token
    stranger = KubernetesCluster(client.ApiClient(configuration))
    try:
        with pytest.raises(PermanentError, match=r"get Pod default/web-1: HTTP 401: .*grant the clb-direct role"):
            stranger.get_pod("default", "web-1")
    finally:
        stranger.close()
    sim.server.stop()
    with pytest.raises(RetryableError, match="get Pod default/web-1"):
        sim.cluster.get_pod("default", "web-1")


def test_a_request_the_api_server_never_answers_gives_up_after_the_request_timeout() -> None:
    # The kernel completes the handshake for a listening socket that nobody accepts on: the request goes out
    # and no answer ever comes. Without `_request_timeout` the client would wait for it forever.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        settings = Settings.load(
            {},
            kube_api_server=f"http://127.0.0.1:{silent.getsockname()[1]}",
            kube_token="t0ken",
            kube_request_timeout_s=0.5,
        )
        cluster = KubernetesCluster.from_settings(settings)
        try:
            with pytest.raises(RetryableError) as info:
                cluster.get_service("default", "web")
        finally:
            cluster.close()
    assert info.value.code == "Timeout"
    assert "get Service default/web: no answer within CLB_DIRECT_KUBE_REQUEST_TIMEOUT_S" in info.value.message
