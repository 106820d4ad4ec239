"""The cluster simulator issue's acceptance test, through the real `kubernetes` client.

A MutatingWebhookConfiguration points at a tiny local HTTPS webhook (test CA) that injects a readiness
gate into every Pod; a Deployment of 4 (maxSurge 1, maxUnavailable 0) then has Pods that serve on
their own loopback IPs but stay Ready=False until the test sets the gate condition with a
strategic-merge patch on pods/status; a rollout to a new VERSION advances one Pod per gate the test
sets, and ends with 4 new Pods serving the new version.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from emulators.cluster.simulator import ClusterSimulator
from emulators.cluster.tls import CertificateAuthority
from tests.integration.cluster_sim.conftest import http_get
from tests.manifests import web_deployment
from tests.support.net import BackgroundServer
from tests.support.polling import eventually

GATE = "cloud.tencent.com/load-balancer-backendgroup-ready"
NS = "default"
SMP = "application/strategic-merge-patch+json"
REPLICAS = 4


class _GateInjector(BaseHTTPRequestHandler):
    """AdmissionReview v1 -> JSONPatch adding the readiness gate (unless the Pod already has it)."""

    def do_POST(self) -> None:
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        request = review["request"]
        spec = request["object"].get("spec") or {}
        gates = spec.get("readinessGates") or []
        response: dict[str, Any] = {"uid": request["uid"], "allowed": True}
        if not any(g.get("conditionType") == GATE for g in gates):
            operation = (
                {"op": "add", "path": "/spec/readinessGates/-", "value": {"conditionType": GATE}}
                if gates
                else {"op": "add", "path": "/spec/readinessGates", "value": [{"conditionType": GATE}]}
            )
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(json.dumps([operation]).encode()).decode()
        body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: one line per admitted Pod would only clutter test output."""


@pytest.fixture
def webhook() -> Iterator[tuple[str, bytes]]:
    ca = CertificateAuthority(common_name="acceptance-test webhook CA")
    with BackgroundServer(_GateInjector, tls=ca.issue(["127.0.0.1"]).server_context()) as server:
        yield server.url("/mutate"), ca.cert_pem


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ClusterSimulator]:
    simulator = ClusterSimulator(kubeconfig_path=tmp_path / "kubeconfig", start_delay_s=0.1, max_grace_s=1.0)
    with simulator:
        yield simulator


@pytest.fixture
def api(cluster: ClusterSimulator) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(config_file=str(cluster.kubeconfig_path))
    try:
        yield api_client
    finally:
        api_client.close()


def _deployment(version: str) -> dict[str, Any]:
    return web_deployment(version, replicas=REPLICAS)


def _condition(pod: Any, kind: str) -> Any:
    return next((c for c in pod.status.conditions or [] if c.type == kind), None)


def _live_pods(core: client.CoreV1Api, version: str | None = None) -> list[Any]:
    pods = core.list_namespaced_pod(NS, label_selector="app=web").items
    live = [p for p in pods if p.metadata.deletion_timestamp is None]
    if version is None:
        return live
    return [p for p in live if p.spec.containers[0].env[0].value == version]


def _set_gate(core: client.CoreV1Api, name: str) -> None:
    core.patch_namespaced_pod_status(
        name,
        NS,
        {
            "status": {
                "conditions": [
                    {
                        "type": GATE,
                        "status": "True",
                        "reason": "LoadBalancerNetworkGroupReady",
                        "lastTransitionTime": "2025-01-01T00:00:00Z",
                    }
                ]
            }
        },
        _content_type=SMP,
    )


def _serving_version(pod: Any) -> str | None:
    answer = http_get(pod.status.pod_ip, 8080, "/")
    return answer[1]["version"] if answer and answer[0] == 200 else None


def _waiting_on_gate(core: client.CoreV1Api, version: str) -> list[Any]:
    """Pods of `version` whose containers are ready but whose gate holds Ready at False."""
    waiting = []
    for pod in _live_pods(core, version):
        containers, ready = _condition(pod, "ContainersReady"), _condition(pod, "Ready")
        if containers and containers.status == "True" and ready and ready.reason == "ReadinessGatesNotReady":
            waiting.append(pod)
    return waiting


def test_gated_deployment_rolls_out_only_as_gates_are_set(
    cluster: ClusterSimulator, api: client.ApiClient, webhook: tuple[str, bytes]
) -> None:
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    url, ca_pem = webhook
    client.AdmissionregistrationV1Api(api).create_mutating_webhook_configuration(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "inject-gate"},
            "webhooks": [
                {
                    "name": "gate.clb-direct.test",
                    "clientConfig": {"url": url, "caBundle": base64.b64encode(ca_pem).decode()},
                    "rules": [
                        {"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}
                    ],
                    "sideEffects": "None",
                    "admissionReviewVersions": ["v1"],
                    "failurePolicy": "Fail",
                }
            ],
        }
    )
    apps.create_namespaced_deployment(NS, _deployment("v1"))

    # Every Pod got the gate from the webhook, serves on its own IP, and is not Ready.
    pods = eventually(lambda: w if len(w := _waiting_on_gate(core, "v1")) == REPLICAS else None, "4 gated Pods")
    assert len({p.status.pod_ip for p in pods}) == REPLICAS
    for pod in pods:
        assert [g.condition_type for g in pod.spec.readiness_gates] == [GATE]
        assert _condition(pod, "Ready").status == "False"
        assert (
            _condition(pod, "Ready").message
            == f'corresponding condition of pod readiness gate "{GATE}" does not exist.'
        )
        assert pod.status.pod_ip.startswith("127.10.")
        assert _serving_version(pod) == "v1"
    assert apps.read_namespaced_deployment_status("web", NS).status.available_replicas in (None, 0)

    for pod in pods:
        _set_gate(core, pod.metadata.name)

    def complete() -> Any:
        status = apps.read_namespaced_deployment_status("web", NS).status
        done = status.updated_replicas == REPLICAS and status.available_replicas == REPLICAS
        return status if done and status.replicas == REPLICAS else None

    eventually(complete, "first rollout complete")
    ready = [p for p in _live_pods(core, "v1") if _condition(p, "Ready").status == "True"]
    assert len(ready) == REPLICAS

    # Roll out v2: each new Pod waits on its gate; the test sets them one by one.
    apps.patch_namespaced_deployment(
        "web",
        NS,
        {
            "spec": {
                "template": {"spec": {"containers": [{"name": "web", "env": [{"name": "VERSION", "value": "v2"}]}]}}
            }
        },
        _content_type=SMP,
    )
    flipped: set[str] = set()
    for step in range(1, REPLICAS + 1):
        waiting = eventually(
            lambda: [p for p in _waiting_on_gate(core, "v2") if p.metadata.name not in flipped] or None,
            f"new Pod {step} waiting on its gate",
        )
        assert len(waiting) == 1  # maxSurge 1: one new Pod at a time
        new_pod = waiting[0]
        assert _serving_version(new_pod) == "v2"
        # The rollout is stalled on this gate: all old Pods still there, no further new Pod.
        assert len(_live_pods(core, "v1")) == REPLICAS - (step - 1)
        assert len(_live_pods(core, "v2")) == step
        assert len(_live_pods(core)) == REPLICAS + 1
        _set_gate(core, new_pod.metadata.name)
        flipped.add(new_pod.metadata.name)
        eventually(
            lambda: len(_live_pods(core, "v1")) == REPLICAS - step or None,
            f"one old Pod removed after gate {step}",
        )

    eventually(complete, "second rollout complete")
    final = eventually(
        lambda: p if len(p := core.list_namespaced_pod(NS, label_selector="app=web").items) == REPLICAS else None,
        "terminated v1 Pods removed",
    )
    assert {p.metadata.name for p in final} == flipped
    assert {_serving_version(p) for p in final} == {"v2"}
    progressing = _condition(apps.read_namespaced_deployment_status("web", NS), "Progressing")
    assert progressing.reason == "NewReplicaSetAvailable"
