"""The product, unchanged, over a real kube-apiserver, kube-controller-manager and etcd.

`LocalStack` joins the session's `RealCluster`: infra/ is applied with the pinned kubectl (CRD, RBAC,
relay, webhook template), the functions run with a TokenRequest token of their own ServiceAccount (a
call their RBAC denies is logged as an HTTP 401/403 and fails the test), the guardian registers the
MutatingWebhookConfiguration that the real API server then calls over HTTPS with the guardian's
caBundle, the real audit webhook backend delivers EventLists to the relay, and the real Deployment
controller rolls the gated Deployment while traffic flows through the CLB emulator's VIP.
"""

from __future__ import annotations

import base64
import json
import ssl
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from kubernetes import client

from demo.report import RunReport
from demo.scenario import Scenario, ScenarioOptions
from demo.stack import LocalStack, StackOptions
from emulators.controlplane.cluster import RealCluster
from tests.support.polling import eventually

GATE = "cloud.tencent.com/load-balancer-backendgroup-ready"
DENIED = ("HTTP 403", "HTTP 401")
WEBHOOK_SECRET = "clb-direct-webhook-tls"


def _denied_calls(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if any(mark in line for mark in DENIED)]


@pytest.mark.timeout(600)
def test_gated_rollout_audit_admission_and_repair_on_the_real_control_plane(
    real_cluster: RealCluster, relay_port: int, tmp_path: Path
) -> None:
    options = StackOptions(run_dir=tmp_path / "run", gate=True, health_poll_s=3.0, relay_port=relay_port)
    scenario = ScenarioOptions(replicas=3, max_surge=1, max_unavailable=0, health_interval=3, rps=20, steady_s=2)
    report = RunReport(label="real control plane", gate_enabled=True, started_at=time.time(), settings={})
    with LocalStack(options, cluster=real_cluster) as stack:
        assert stack.relay is not None and stack.runtime is not None
        token_config = stack.functions_kubeconfig.read_text()
        assert '"token"' in token_config and "client-certificate" not in token_config  # the SA's token, not admin
        Scenario(stack, scenario, report).run()
        phases = {p.name: p for p in report.phases}
        assert report.ok, [(p.name, p.met, p.detail) for p in report.phases]
        assert phases["rolling update"].requests_failed == 0 and phases["rolling update"].requests_ok > 0
        assert "delete Service" in phases  # every gate released once the Service is gone
        assert stack.relay.counters["audit_received"] > 0, "the API server's audit webhook reached the relay"
        assert stack.relay.counters["audit_unauthenticated"] == 0, "every delivery carried the audit kubeconfig's token"
        assert _denied_calls(stack.log_path) == [], "the functions' RBAC denied a call"
        _webhook_secret_damaged_and_repaired(stack)


def _guardian(stack: LocalStack, reason: str) -> dict[str, Any]:
    assert stack.runtime is not None
    result = stack.runtime.invoke("guardian", {"step": "guardian", "reason": reason})
    assert isinstance(result, dict), result
    return result


def _serves(stack: LocalStack, secret: client.V1Secret) -> bool:
    port = urlsplit(stack.env["CLB_DIRECT_WEBHOOK_URL"]).port or 443
    issued = base64.b64decode(secret.data["tls.crt"]).decode()
    return _same_leaf(ssl.get_server_certificate(("127.0.0.1", port), timeout=5), issued)


def _repaired(stack: LocalStack, core: client.CoreV1Api, admission: client.AdmissionregistrationV1Api) -> None:
    """The Secret holds a fresh pair, the endpoint serves it, the webhook trusts its CA; Pods get the gate."""
    secret = core.read_namespaced_secret(WEBHOOK_SECRET, "kube-system")
    assert secret.data and "tls.crt" in secret.data and "ca.crt" in secret.data, "the guardian filled the Secret"
    eventually(lambda: _serves(stack, secret), "the admission endpoint serving the guardian's new certificate", 60)
    webhook = admission.read_mutating_webhook_configuration("clb-direct-readiness-gate")
    bundle = base64.b64decode(webhook.webhooks[0].client_config.ca_bundle).decode()
    assert base64.b64decode(secret.data["ca.crt"]).decode().strip() in bundle


def _webhook_secret_damaged_and_repaired(stack: LocalStack) -> None:
    """Corrupted: the guardian repairs it alone. Deleted: the functions may not create Secrets (least
    privilege), so the guardian says so until the operator re-applies infra/, then it repairs it."""
    assert isinstance(stack.sim, RealCluster)
    api = stack.sim.admin_client()
    core, admission = client.CoreV1Api(api), client.AdmissionregistrationV1Api(api)
    try:
        core.patch_namespaced_secret(
            WEBHOOK_SECRET, "kube-system", {"data": {"tls.crt": base64.b64encode(b"garbage").decode()}}
        )
        assert _guardian(stack, "test: Secret corrupted").get("ok"), "the guardian repairs a corrupted Secret"
        _repaired(stack, core, admission)
        _admission_called_by_the_api_server(core, "probe-1")

        core.delete_namespaced_secret(WEBHOOK_SECRET, "kube-system")
        denied = _guardian(stack, "test: Secret deleted")
        assert not denied.get("ok") and "403" in json.dumps(denied), denied
        stack.sim.apply_infra(webhook_url=stack.env["CLB_DIRECT_WEBHOOK_URL"], bootstrap=False)
        assert _guardian(stack, "test: infra re-applied").get("ok")
        _repaired(stack, core, admission)
        _admission_called_by_the_api_server(core, "probe-2")
    finally:
        api.close()


def _same_leaf(served: str, issued: str) -> bool:
    from cryptography import x509

    first = x509.load_pem_x509_certificate(issued.encode())
    return x509.load_pem_x509_certificate(served.encode()) == first


def _admission_called_by_the_api_server(core: client.CoreV1Api, pod_name: str) -> None:
    """A direct-access Service, then a Pod it selects: the real API server's webhook call injects the gate."""
    ns = "default"
    if any(s.metadata.name == "probe" for s in core.list_namespaced_service(ns).items):
        core.delete_namespaced_service("probe", ns)
        eventually(
            lambda: not core.list_namespaced_service(ns, field_selector="metadata.name=probe").items, "probe gone"
        )
    core.create_namespaced_service(
        ns,
        {
            "metadata": {"name": "probe", "annotations": {"service.cloud.tencent.com/direct-access": "true"}},
            "spec": {"type": "LoadBalancer", "selector": {"app": "probe"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    )

    def indexed() -> bool:
        svc = core.read_namespaced_service("probe", ns)
        return bool((svc.metadata.annotations or {}).get("service.kubernetes.io/loadbalance-id"))

    eventually(indexed, "the service step handled Service probe (selector indexed)", timeout=120)
    attempts: list[str] = []

    def gated_pod() -> bool:
        # failurePolicy Ignore: a webhook call that timed out on a loaded machine admits the Pod ungated.
        # Retry with a new Pod; the API server's log names each failed call.
        name = f"{pod_name}-{len(attempts)}"
        attempts.append(name)
        pod = core.create_namespaced_pod(
            ns,
            {
                "metadata": {"name": name, "labels": {"app": "probe"}},
                "spec": {"containers": [{"name": "web", "image": "example/web:1", "ports": [{"containerPort": 8080}]}]},
            },
        )
        core.delete_namespaced_pod(name, ns)
        return any(g.condition_type == GATE for g in pod.spec.readiness_gates or [])

    eventually(gated_pod, "a Pod admitted with the gate by the real API server's webhook call", timeout=60)
    assert len(attempts) <= 3, f"the webhook call failed {len(attempts) - 1} times"
