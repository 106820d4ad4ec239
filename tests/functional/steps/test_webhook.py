"""Admission and guardian handlers end to end (API-gateway events, selector index, certificates)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

from shared.certs import CA_BUNDLE, TLS_CERT, split_bundle
from shared.config import GATE_CONDITION_TYPE
from shared.domain.models import SelectorEntry
from tests.functional.steps.conftest import Env, service


def review_response(result: dict) -> dict:
    assert result["statusCode"] == 200, result
    return json.loads(result["body"])["response"]


def test_admission_injects_gate_from_selector_index(env: Env) -> None:
    env.deps.store.put_selector(SelectorEntry(namespace="default", service="web", selector={"app": "web"}))
    env.deps.store.kv_set("selector-index:warm:default", "1", ttl_s=None, now=env.clock.now())
    for fixture in ("admission_pod_create", "admission_pod_create_b64"):
        response = review_response(env.invoke("admission", fixture))
        assert response["uid"] == "705ab4f5-6393-11e8-b7cc-42010a800002" and response["allowed"]
        patch = json.loads(base64.b64decode(response["patch"]))
        assert patch == [
            {"op": "add", "path": "/spec/readinessGates", "value": [{"conditionType": GATE_CONDITION_TYPE}]}
        ]
    assert env.cluster.list_service_calls == 0  # warm index: no API call on the admission path


def test_admission_cold_index_falls_back_to_services_and_warms(env: Env) -> None:
    env.cluster.put_service(service())
    response = review_response(env.invoke("admission", "admission_pod_create"))
    assert "patch" in response and env.cluster.list_service_calls == 1
    assert [e.service for e in env.deps.store.list_selectors("default")] == ["web"]
    review_response(env.invoke("admission", "admission_pod_create"))
    assert env.cluster.list_service_calls == 1


def test_admission_dry_run_has_no_side_effects(env: Env) -> None:
    env.cluster.put_service(service().model_copy(update={"namespace": "shop"}))
    response = review_response(env.invoke("admission", "admission_pod_create_dryrun"))
    assert "patch" in response
    assert env.deps.store.list_selectors("shop") == []
    assert env.deps.store.kv_get("selector-index:warm:shop", now=env.clock.now()) is None


def test_admission_host_network_gets_warning_not_gate(env: Env) -> None:
    env.cluster.put_service(service())
    response = review_response(env.invoke("admission", "admission_pod_hostnetwork"))
    assert "patch" not in response and "hostNetwork" in response["warnings"][0]


def test_admission_malformed_review_is_400(env: Env) -> None:
    result = env.invoke("admission", "admission_malformed")
    assert result["statusCode"] == 400
    assert "request.uid" in json.loads(result["body"])["message"]
    assert env.invoke("admission", {"not": "an api gateway event"})["statusCode"] == 400


def test_admission_module_does_not_import_kubernetes() -> None:
    code = "import sys, functions.admission.handler; sys.exit(1 if 'kubernetes' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_guardian_creates_repairs_and_rotates(env: Env) -> None:
    result = env.invoke("guardian", "guardian_timer")
    assert result["ok"] and result["result"]["certificates"] == "create"
    name = env.deps.settings.webhook_configuration_name
    hook = env.cluster.webhooks[name]["webhooks"][0]
    assert hook["failurePolicy"] == "Ignore" and hook["clientConfig"]["url"] == "https://127.0.0.1:8443/admission"
    secret = env.cluster.secrets[("kube-system", "clb-direct-webhook-tls")]
    assert base64.b64decode(hook["clientConfig"]["caBundle"]).decode() == secret[CA_BUNDLE]
    # nothing to do on the next run
    quiet = env.invoke("guardian", "guardian_timer")
    assert quiet["result"]["certificates"] == "keep" and quiet["result"]["webhook_drift"] == []
    assert quiet["actions"] == []
    # deleted configuration and Secret are rebuilt
    del env.cluster.webhooks[name]
    del env.cluster.secrets[("kube-system", "clb-direct-webhook-tls")]
    repaired = env.invoke("guardian", "guardian_timer")
    assert repaired["result"]["webhook_drift"] == ["missing"] and repaired["result"]["certificates"] == "create"
    # an altered failurePolicy is put back
    env.cluster.webhooks[name]["webhooks"][0]["failurePolicy"] = "Fail"
    assert env.invoke("guardian", "guardian_timer")["result"]["webhook_drift"] == ["failurePolicy"]
    assert env.cluster.webhooks[name]["webhooks"][0]["failurePolicy"] == "Ignore"
    # rotation shortly before expiry keeps both CAs in the bundle
    old_cert = env.cluster.secrets[("kube-system", "clb-direct-webhook-tls")][TLS_CERT]
    env.clock.advance((365 - 10) * 86400)
    rotated = env.invoke("guardian", "guardian_timer")["result"]
    assert rotated["certificates"] == "rotate"
    secret = env.cluster.secrets[("kube-system", "clb-direct-webhook-tls")]
    assert secret[TLS_CERT] != old_cert and len(split_bundle(secret[CA_BUNDLE])) == 2
    bundle = base64.b64decode(env.cluster.webhooks[name]["webhooks"][0]["clientConfig"]["caBundle"]).decode()
    assert len(split_bundle(bundle)) == 2
