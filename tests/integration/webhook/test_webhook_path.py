"""The webhook path end to end: guardian registers it, Pods get the gate, and damage is repaired.

Everything is real except the CLB (the service step talks to the `clb_fake` emulator model once, to
index the Service's selector): the simulator's API server calls the admission function in the local
runtime over HTTPS and verifies it against the caBundle the guardian wrote, the runtime serves the
certificate from the guardian's Secret, and Pods come from a Deployment's ReplicaSet or the core API.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
import time
import urllib.request
import uuid
from typing import Any

import pytest
from cryptography import x509
from kubernetes import client

from shared.certs import CA_BUNDLE, CA_CERT, TLS_CERT, generate_ca, split_bundle
from shared.clock import FakeClock
from shared.domain.webhook_config import WEBHOOK_NAME
from tests.integration.webhook.conftest import NS, WebhookStack, condition, has_gate
from tests.support.net import free_port
from tests.support.polling import eventually

DAY_S = 86_400.0


def _pem(certificate: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(certificate.encode())


def _bundle_of(webhook: dict[str, Any]) -> str:
    return base64.b64decode(webhook["webhooks"][0]["clientConfig"]["caBundle"]).decode()


def _serves(stack: WebhookStack, certificate: str) -> bool:
    return _pem(stack.served_certificate()) == _pem(certificate)


def _foreign_ca_pem() -> bytes:
    """A CA nobody signed the endpoint with: what a hand-edited caBundle pasted from elsewhere holds."""
    ca_pem, _key = generate_ca(now=time.time(), validity_days=30, common_name="someone else's CA")
    return ca_pem.encode()


def _deployment(replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "example/web:1", "ports": [{"containerPort": 8080}]}]},
            },
        },
    }


def _running_pods(stack: WebhookStack, selector: str, count: int) -> list[client.V1Pod] | None:
    pods = stack.core.list_namespaced_pod(NS, label_selector=selector).items
    started = [p for p in pods if (c := condition(p, "ContainersReady")) is not None and c.status == "True"]
    return started if len(started) == count and len(pods) == count else None


def _review(stack: WebhookStack, pod: dict[str, Any]) -> dict[str, Any]:
    """Send an AdmissionReview to the endpoint exactly as the API server does (TLS verified by caBundle)."""
    review = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": NS,
            "operation": "CREATE",
            "object": pod,
            "dryRun": False,
        },
    }
    context = ssl.create_default_context(cadata=_bundle_of(stack.webhook()))
    request = urllib.request.Request(
        stack.webhook_url, data=json.dumps(review).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10, context=context) as reply:
        response: dict[str, Any] = json.loads(reply.read())["response"]
    return response


def test_guardian_registers_the_webhook_and_deployment_pods_get_the_gate(stack: WebhookStack) -> None:
    first = stack.bring_up()
    assert first["certificates"] == "create" and first["webhook_drift"] == ["missing"]
    secret, webhook = stack.secret(), stack.webhook()
    hook = webhook["webhooks"][0]
    assert hook["name"] == WEBHOOK_NAME and hook["clientConfig"]["url"] == stack.webhook_url
    assert hook["failurePolicy"] == "Ignore"
    assert _bundle_of(webhook) == secret[CA_BUNDLE]
    assert [_pem(secret[CA_CERT])] == split_bundle(secret[CA_BUNDLE])
    assert _serves(stack, secret[TLS_CERT])

    follow_ups = stack.direct_access_service()
    assert [e.service for e in stack.store.list_selectors(NS)] == ["web"]
    assert [function for function, _ in follow_ups.calls] == ["bind"]

    stack.apps.create_namespaced_deployment(NS, _deployment(replicas=3))
    pods = eventually(lambda: _running_pods(stack, "app=web", 3), "3 Deployment Pods with containers ready")
    template = stack.apps.read_namespaced_deployment("web", NS).spec.template
    assert not template.spec.readiness_gates, "the gate comes from the webhook, not from the template"
    for pod in pods:
        assert pod.metadata.owner_references[0].kind == "ReplicaSet"
        assert has_gate(pod), pod.metadata.name
        ready = condition(pod, "Ready")
        assert ready is not None and ready.status == "False" and ready.reason == "ReadinessGatesNotReady"

    other = stack.create_pod("other", labels={"app": "other"})
    assert not has_gate(other)
    eventually(
        lambda: (
            (c := condition(stack.core.read_namespaced_pod("other", NS), "Ready")) is not None and c.status == "True"
        ),
        "the unselected Pod to become Ready without any gate",
    )

    host_network = {"hostNetwork": True}
    assert not has_gate(stack.create_pod("host", **host_network))
    response = _review(
        stack,
        {"metadata": {"name": "host2", "labels": {"app": "web"}}, "spec": {"containers": [], **host_network}},
    )
    assert response["allowed"] and "patch" not in response
    assert any("hostNetwork" in warning and f"{NS}/web" in warning for warning in response["warnings"])

    again = stack.run_guardian()
    assert again["certificates"] == "keep" and again["webhook_drift"] == []
    assert stack.guardian_runs[-1]["actions"] == [], "a healthy webhook is left alone"


def test_a_deleted_webhook_configuration_is_recreated_by_the_next_run(stack: WebhookStack) -> None:
    stack.bring_up()
    stack.direct_access_service()
    secret_before = stack.secret()
    stack.admissionregistration.delete_mutating_webhook_configuration("clb-direct-readiness-gate")
    assert not has_gate(stack.create_pod("while-missing")), "no webhook, no gate: the deletion took effect"

    result = stack.run_guardian()
    assert result["webhook_drift"] == ["missing"] and result["certificates"] == "keep"
    assert stack.secret() == secret_before, "a lost configuration does not churn the certificates"
    assert _bundle_of(stack.webhook()) == secret_before[CA_BUNDLE]
    assert has_gate(stack.create_pod("after-repair"))


def test_a_deleted_secret_gets_a_new_ca_and_the_endpoint_picks_it_up(stack: WebhookStack) -> None:
    stack.bring_up()
    stack.direct_access_service()
    old = stack.secret()
    stack.core.delete_namespaced_secret("clb-direct-webhook-tls", "kube-system")

    result = stack.run_guardian()
    assert result["certificates"] == "create" and result["webhook_drift"] == ["clientConfig.caBundle"]
    new = stack.secret()
    assert new[CA_CERT] != old[CA_CERT]
    assert split_bundle(_bundle_of(stack.webhook())) == [_pem(new[CA_CERT])], "the old CA is no longer trusted"

    # The runtime re-reads the Secret every ~2 s; each probe is a full handshake, which must never fail mid-swap.
    eventually(lambda: _serves(stack, new[TLS_CERT]), "the endpoint to serve the new certificate")
    assert has_gate(stack.create_pod("after-new-ca"))


@pytest.mark.parametrize(
    ("field", "value", "drift"),
    [
        ("failurePolicy", "Fail", "failurePolicy"),
        ("clientConfig", "dead-url", "clientConfig.url"),
        ("clientConfig", "foreign-ca", "clientConfig.caBundle"),
        ("namespaceSelector", {"matchLabels": {"nowhere": "true"}}, "namespaceSelector"),
    ],
)
def test_an_altered_webhook_is_repaired(stack: WebhookStack, field: str, value: Any, drift: str) -> None:
    stack.bring_up()
    stack.direct_access_service()
    body = stack.webhook()
    hook = body["webhooks"][0]
    if value == "dead-url":
        hook["clientConfig"]["url"] = f"https://127.0.0.1:{free_port()}/admission"  # nothing listens there
    elif value == "foreign-ca":
        hook["clientConfig"]["caBundle"] = base64.b64encode(_foreign_ca_pem()).decode()
    else:
        hook[field] = value
    stack.admissionregistration.replace_mutating_webhook_configuration("clb-direct-readiness-gate", body)
    if field != "failurePolicy":
        assert not has_gate(stack.create_pod("while-altered")), "the edit broke admission (Ignore: no gate)"

    result = stack.run_guardian()
    assert drift in result["webhook_drift"] and result["certificates"] == "keep"
    repaired = stack.webhook()["webhooks"][0]
    assert repaired["failurePolicy"] == "Ignore" and repaired["clientConfig"]["url"] == stack.webhook_url
    assert _bundle_of(stack.webhook()) == stack.secret()[CA_BUNDLE]
    assert has_gate(stack.create_pod("after-repair"))


class PodCreator:
    """Creates gated-selector Pods back to back on a thread; records each result or rejection."""

    def __init__(self, stack: WebhookStack) -> None:
        self._stack = stack
        self._stop = threading.Event()
        self.gated: list[bool] = []
        self.rejected: list[str] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self.gated.append(has_gate(self._stack.create_pod(f"rot-{len(self.gated) + len(self.rejected)}")))
            except client.ApiException as exc:
                self.rejected.append(f"{exc.status}: {exc.body}")

    def __enter__(self) -> PodCreator:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


@pytest.mark.timeout(180)
def test_rotation_near_expiry_keeps_admission_working_throughout(stack: WebhookStack) -> None:
    # Issued 340 days ago with 365 days of validity: 25 days left, inside the 30-day rotation window.
    # (The clock goes back, not forward: the simulator verifies certificates against real time.)
    issued = stack.bring_up(FakeClock(time.time() - 340 * DAY_S), webhook_failure_policy="Fail")
    assert issued["certificates"] == "create"
    stack.direct_access_service()
    old = stack.secret()
    assert has_gate(stack.create_pod("before-rotation"))

    with PodCreator(stack) as creator:
        eventually(lambda: len(creator.gated) >= 3, "Pods admitted before the rotation")
        rotated = stack.run_guardian(FakeClock(time.time()), webhook_failure_policy="Fail")
        assert rotated["certificates"] == "rotate" and rotated["webhook_drift"] == ["clientConfig.caBundle"]
        new = stack.secret()
        overlap = split_bundle(_bundle_of(stack.webhook()))
        assert overlap == [_pem(new[CA_CERT]), _pem(old[CA_CERT])], "both CAs are trusted during the overlap"
        eventually(lambda: _serves(stack, new[TLS_CERT]), "the endpoint to serve the rotated certificate")
        served_new_at = len(creator.gated)
        eventually(lambda: len(creator.gated) >= served_new_at + 3, "Pods admitted with the new certificate")
    assert creator.rejected == [], "failurePolicy Fail: any failed admission call would have rejected a Pod"
    assert all(creator.gated) and len(creator.gated) >= 6

    steady = stack.run_guardian(FakeClock(time.time()), webhook_failure_policy="Fail")
    assert steady["certificates"] == "keep" and steady["webhook_drift"] == []

    # 26 days on, the old CA has expired: the bundle drops it and the endpoint's certificate is unchanged.
    after = stack.run_guardian(FakeClock(time.time() + 26 * DAY_S), webhook_failure_policy="Fail")
    assert after["certificates"] == "update-bundle"
    assert split_bundle(_bundle_of(stack.webhook())) == [_pem(new[CA_CERT])]
    assert stack.secret()[TLS_CERT] == new[TLS_CERT]
    assert has_gate(stack.create_pod("after-overlap"))


def test_failure_policy_ignore_admits_pods_without_the_gate_when_the_endpoint_is_down(stack: WebhookStack) -> None:
    stack.bring_up()
    stack.direct_access_service()
    assert has_gate(stack.create_pod("while-up"))
    stack.stop_endpoint()
    down = stack.create_pod("while-down")
    assert not has_gate(down)
    eventually(
        lambda: (
            (c := condition(stack.core.read_namespaced_pod("while-down", NS), "Ready")) is not None
            and c.status == "True"
        ),
        "the ungated Pod to become Ready (the documented cost of Ignore)",
    )


def test_failure_policy_fail_rejects_pod_creation_when_the_endpoint_is_down(stack: WebhookStack) -> None:
    stack.bring_up(webhook_failure_policy="Fail")
    stack.direct_access_service()
    assert has_gate(stack.create_pod("while-up"))
    stack.stop_endpoint()
    with pytest.raises(client.ApiException) as rejected:
        stack.create_pod("while-down")
    assert rejected.value.status == 500
    assert f'failed calling webhook "{WEBHOOK_NAME}"' in json.loads(rejected.value.body)["message"]
    names = {p.metadata.name for p in stack.core.list_namespaced_pod(NS).items}
    assert "while-down" not in names and "while-up" in names
    # kube-system is excluded by namespaceSelector: a dead webhook can never lock the control plane out.
    stack.core.create_namespaced_pod(
        "kube-system",
        {"metadata": {"name": "coredns-x"}, "spec": {"containers": [{"name": "dns", "image": "coredns:1"}]}},
    )
