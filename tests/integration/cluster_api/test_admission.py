"""Mutating admission over HTTPS: Pod CREATE calls matching webhooks, verifies caBundle, applies patches."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from kubernetes import client

from emulators.cluster.admission import AdmissionChain
from emulators.cluster.tls import CertificateAuthority
from tests.integration.cluster_api.conftest import Cluster, error_body, pod_manifest
from tests.support.net import BackgroundServer

GATE = "cloud.tencent.com/load-balancer-backendgroup-ready"
Responder = Callable[[dict[str, Any], str], dict[str, Any]]


def inject_gate(request: dict[str, Any], _path: str) -> dict[str, Any]:
    ops = [{"op": "add", "path": "/spec/readinessGates", "value": [{"conditionType": GATE}]}]
    return {
        "uid": request["uid"],
        "allowed": True,
        "patchType": "JSONPatch",
        "patch": base64.b64encode(json.dumps(ops).encode()).decode(),
    }


class WebhookServer:
    """A tiny HTTPS AdmissionReview endpoint; ``responder`` decides each answer."""

    def __init__(self, ca: CertificateAuthority) -> None:
        self.reviews: list[tuple[str, dict[str, Any]]] = []
        self.queries: list[str] = []
        self.responder: Responder = inject_gate
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_POST(self) -> None:
                review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                # The API server appends its deadline (?timeout=10s) to the configured URL.
                path, _, query = self.path.partition("?")
                outer.queries.append(query)
                outer.reviews.append((path, review))
                body = json.dumps(
                    {
                        "apiVersion": "admission.k8s.io/v1",
                        "kind": "AdmissionReview",
                        "response": outer.responder(review["request"], path),
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = BackgroundServer(Handler, tls=ca.issue(["127.0.0.1"]).server_context())

    def url(self, path: str = "/admit") -> str:
        return self._server.url(path)

    def stop(self) -> None:
        self._server.stop()


@pytest.fixture
def webhook_ca() -> CertificateAuthority:
    return CertificateAuthority("webhook test CA")


@pytest.fixture
def webhook(webhook_ca: CertificateAuthority) -> Iterator[WebhookServer]:
    server = WebhookServer(webhook_ca)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def admitting(cluster: Cluster) -> Cluster:
    cluster.store.admission = AdmissionChain(cluster.store)
    return cluster


def configure(cluster: Cluster, url: str, ca_pem: bytes | None, **webhook: Any) -> None:
    client_config: dict[str, Any] = {"url": url}
    if ca_pem is not None:
        client_config["caBundle"] = base64.b64encode(ca_pem).decode()
    spec = {
        "name": webhook.pop("name", "gate.clb.example.com"),
        "clientConfig": client_config,
        "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "timeoutSeconds": 10,
        **webhook,
    }
    config_name = webhook.get("name", spec["name"]).split(".")[0]
    client.AdmissionregistrationV1Api(cluster.api).create_mutating_webhook_configuration(
        {"metadata": {"name": f"cfg-{config_name}"}, "webhooks": [spec]}
    )


def test_webhook_injects_the_gate_and_receives_a_faithful_review(
    admitting: Cluster, webhook: WebhookServer, webhook_ca: CertificateAuthority
) -> None:
    configure(
        admitting,
        webhook.url(),
        webhook_ca.cert_pem,
        namespaceSelector={
            "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]}]
        },
    )
    pod = admitting.core.create_namespaced_pod("shop", pod_manifest(None))
    assert [g.condition_type for g in pod.spec.readiness_gates] == [GATE]
    path, review = webhook.reviews[0]
    request = review["request"]
    assert path == "/admit" and webhook.queries[0] == "timeout=10s"
    assert review["apiVersion"] == "admission.k8s.io/v1" and review["kind"] == "AdmissionReview"
    assert request["name"] == "" and request["namespace"] == "shop" and request["operation"] == "CREATE"
    assert request["kind"] == {"group": "", "version": "v1", "kind": "Pod"}
    assert request["resource"] == {"group": "", "version": "v1", "resource": "pods"}
    assert request["userInfo"]["username"] == "system:admin"
    assert request["object"]["metadata"]["generateName"] == "web-"
    assert request["dryRun"] is False and request["options"]["kind"] == "CreateOptions" and request["uid"]
    admitting.core.create_namespaced_pod("kube-system", pod_manifest("skipped"))
    assert len(webhook.reviews) == 1  # namespaceSelector excluded kube-system


def test_object_selector_and_rules_limit_the_calls(
    admitting: Cluster, webhook: WebhookServer, webhook_ca: CertificateAuthority
) -> None:
    configure(admitting, webhook.url(), webhook_ca.cert_pem, objectSelector={"matchLabels": {"inject": "yes"}})
    plain = admitting.core.create_namespaced_pod("shop", pod_manifest("plain"))
    assert plain.spec.readiness_gates is None and webhook.reviews == []
    labelled = admitting.core.create_namespaced_pod("shop", pod_manifest("labelled", {"inject": "yes"}))
    assert labelled.spec.readiness_gates is not None
    admitting.core.create_namespaced_config_map("shop", {"metadata": {"name": "cm", "labels": {"inject": "yes"}}})
    assert len(webhook.reviews) == 1


def test_untrusted_certificate_follows_the_failure_policy(admitting: Cluster, webhook: WebhookServer) -> None:
    other_ca = CertificateAuthority("not the webhook's CA")
    configure(admitting, webhook.url(), other_ca.cert_pem, name="ignore.clb.example.com", failurePolicy="Ignore")
    pod = admitting.core.create_namespaced_pod("shop", pod_manifest("ignored"))
    assert pod.spec.readiness_gates is None and webhook.reviews == []
    configure(admitting, webhook.url(), other_ca.cert_pem, name="fail.clb.example.com", failurePolicy="Fail")
    with pytest.raises(client.ApiException) as caught:
        admitting.core.create_namespaced_pod("shop", pod_manifest("refused"))
    assert caught.value.status == 500
    body = error_body(caught.value)
    assert body["reason"] == "InternalError"
    assert body["message"].startswith('Internal error occurred: failed calling webhook "fail.clb.example.com"')
    assert "CERTIFICATE_VERIFY_FAILED" in body["message"]
    assert admitting.store.get("pods", "shop", "refused") is None


def test_denial_and_uid_mismatch(admitting: Cluster, webhook: WebhookServer, webhook_ca: CertificateAuthority) -> None:
    configure(admitting, webhook.url(), webhook_ca.cert_pem)
    webhook.responder = lambda request, _path: {
        "uid": request["uid"],
        "allowed": False,
        "status": {"code": 403, "message": "hostNetwork pods are not supported"},
    }
    with pytest.raises(client.ApiException) as denied:
        admitting.core.create_namespaced_pod("shop", pod_manifest("denied"))
    assert denied.value.status == 403
    assert error_body(denied.value)["message"] == (
        'admission webhook "gate.clb.example.com" denied the request: hostNetwork pods are not supported'
    )
    webhook.responder = lambda _request, _path: {"uid": "someone-else", "allowed": True}
    with pytest.raises(client.ApiException) as mismatch:
        admitting.core.create_namespaced_pod("shop", pod_manifest("mismatch"))
    assert mismatch.value.status == 500 and "someone-else" in error_body(mismatch.value)["message"]


def test_reinvocation_if_needed(admitting: Cluster, webhook: WebhookServer, webhook_ca: CertificateAuthority) -> None:
    def respond(request: dict[str, Any], path: str) -> dict[str, Any]:
        if path == "/label":
            ops = [{"op": "add", "path": "/metadata/labels/touched", "value": "yes"}]
            return {
                "uid": request["uid"],
                "allowed": True,
                "patchType": "JSONPatch",
                "patch": base64.b64encode(json.dumps(ops).encode()).decode(),
            }
        if request["object"]["spec"].get("readinessGates"):
            return {"uid": request["uid"], "allowed": True}
        return inject_gate(request, path)

    webhook.responder = respond
    configure(
        admitting,
        webhook.url("/gate"),
        webhook_ca.cert_pem,
        name="a-gate.clb.example.com",
        reinvocationPolicy="IfNeeded",
    )
    configure(admitting, webhook.url("/label"), webhook_ca.cert_pem, name="b-label.clb.example.com")
    pod = admitting.core.create_namespaced_pod("shop", pod_manifest("twice"))
    assert [path for path, _ in webhook.reviews] == ["/gate", "/label", "/gate"]
    assert pod.metadata.labels["touched"] == "yes" and len(pod.spec.readiness_gates) == 1


def test_service_reference_is_refused_clearly(admitting: Cluster) -> None:
    client.AdmissionregistrationV1Api(admitting.api).create_mutating_webhook_configuration(
        {
            "metadata": {"name": "svc"},
            "webhooks": [
                {
                    "name": "svc.clb.example.com",
                    "clientConfig": {"service": {"namespace": "x", "name": "y"}},
                    "rules": [{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}],
                    "sideEffects": "None",
                    "admissionReviewVersions": ["v1"],
                }
            ],
        }
    )
    with pytest.raises(client.ApiException) as caught:
        admitting.core.create_namespaced_pod("shop", pod_manifest("svc"))
    assert caught.value.status == 500 and "set clientConfig.url" in error_body(caught.value)["message"]


def test_in_process_creates_are_admitted_too(
    admitting: Cluster, webhook: WebhookServer, webhook_ca: CertificateAuthority
) -> None:
    configure(admitting, webhook.url(), webhook_ca.cert_pem)
    pod = admitting.store.create(
        "pods", "shop", pod_manifest(None), actor="system:serviceaccount:kube-system:replicaset-controller"
    )
    assert pod["spec"]["readinessGates"] == [{"conditionType": GATE}]
    user = webhook.reviews[0][1]["request"]["userInfo"]
    assert user["username"] == "system:serviceaccount:kube-system:replicaset-controller"
    assert "system:serviceaccounts:kube-system" in user["groups"]
