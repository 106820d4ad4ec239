"""Admission and guardian handlers end to end (API-gateway events, selector index, certificates)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import pytest

from shared.certs import CA_BUNDLE, TLS_CERT, split_bundle
from shared.domain.models import GATE_CONDITION_TYPE, SelectorEntry
from shared.keys import warm_key
from shared.steps.guardian import ca_mode
from tests.functional.steps.conftest import Env, service


def review_response(result: dict) -> dict:
    assert result["statusCode"] == 200, result
    return json.loads(result["body"])["response"]


def test_admission_injects_gate_from_selector_index(env: Env) -> None:
    env.deps.store.put_selector(SelectorEntry(namespace="default", service="web", selector={"app": "web"}))
    env.deps.store.kv_set(warm_key("default"), "1", ttl_s=None, now=env.clock.now())
    for fixture in ("admission_pod_create", "admission_pod_create_b64"):
        response = review_response(env.invoke("admission", fixture))
        assert response["uid"] == "705ab4f5-6393-11e8-b7cc-42010a800002" and response["allowed"]
        patch = json.loads(base64.b64decode(response["patch"]))
        assert patch[0] == {
            "op": "add",
            "path": "/spec/readinessGates",
            "value": [{"conditionType": GATE_CONDITION_TYPE}],
        }
        # then the termination protection: the drain-wait preStop and the Pod's prestop id label
        assert [op["path"] for op in patch[1:]] == [
            "/spec/containers/0/lifecycle",
            "/metadata/labels/clb-direct.cloud.tencent.com~1prestop-id",
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
    assert env.deps.store.kv_get(warm_key("shop"), now=env.clock.now()) is None


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


APIGW_URL = "https://service-abcd1234-1250000000.gz.apigw.tencentcs.com/release/admission"


@pytest.mark.parametrize("settings_overrides", [{"webhook_url": APIGW_URL}], indirect=True)
def test_guardian_behind_the_api_gateway_leaves_ca_bundle_empty_and_repairs(env: Env) -> None:
    """The API gateway serves Tencent's public certificate: our CA there would fail every TLS handshake."""
    name = env.deps.settings.webhook_configuration_name
    result = env.invoke("guardian", "guardian_timer")
    assert result["ok"] and result["result"]["certificates"] == "public"
    client_config = env.cluster.webhooks[name]["webhooks"][0]["clientConfig"]
    assert client_config == {"url": APIGW_URL}  # no caBundle: the API server uses its system roots
    assert env.cluster.secrets == {}  # no Secret is read or written in this mode
    assert env.invoke("guardian", "guardian_timer")["actions"] == []
    # a caBundle someone pinned (e.g. left over from an own-CA deployment) is removed again
    env.cluster.webhooks[name]["webhooks"][0]["clientConfig"]["caBundle"] = base64.b64encode(b"stale").decode()
    assert env.invoke("guardian", "guardian_timer")["result"]["webhook_drift"] == ["clientConfig.caBundle"]
    assert "caBundle" not in env.cluster.webhooks[name]["webhooks"][0]["clientConfig"]
    # a deleted configuration is recreated, still without a caBundle
    del env.cluster.webhooks[name]
    assert env.invoke("guardian", "guardian_timer")["result"]["webhook_drift"] == ["missing"]
    assert env.cluster.webhooks[name]["webhooks"][0]["clientConfig"] == {"url": APIGW_URL}


@pytest.mark.parametrize(
    "settings_overrides",
    [
        {"webhook_url": "https://clb-direct-admission.kube-system.svc/admission"},
        {"webhook_url": APIGW_URL, "webhook_ca_mode": "own"},
    ],
    indirect=True,
)
def test_guardian_uses_its_own_ca_where_it_serves_the_endpoint(env: Env) -> None:
    """An in-cluster endpoint (or `own` forced) serves the guardian's certificate: caBundle = its CA."""
    name = env.deps.settings.webhook_configuration_name
    assert env.invoke("guardian", "guardian_timer")["result"]["certificates"] == "create"
    secret = env.cluster.secrets[("kube-system", "clb-direct-webhook-tls")]
    bundle = env.cluster.webhooks[name]["webhooks"][0]["clientConfig"]["caBundle"]
    assert base64.b64decode(bundle).decode() == secret[CA_BUNDLE]
    del env.cluster.webhooks[name]["webhooks"][0]["clientConfig"]["caBundle"]
    assert env.invoke("guardian", "guardian_timer")["result"]["webhook_drift"] == ["clientConfig.caBundle"]
    assert env.cluster.webhooks[name]["webhooks"][0]["clientConfig"]["caBundle"] == bundle


@pytest.mark.parametrize(
    ("host", "mode"),
    [
        ("127.0.0.1", "own"),
        ("::1", "own"),
        ("localhost", "own"),
        ("admission.kube-system.svc", "own"),
        ("admission.kube-system.svc.cluster.local", "own"),
        ("service-x.gz.apigw.tencentcs.com", "public"),
        ("webhook.example.com", "public"),
    ],
)
def test_auto_ca_mode_by_host(host: str, mode: str) -> None:
    assert ca_mode("auto", host) == mode
    assert ca_mode("public", "127.0.0.1") == "public" and ca_mode("own", host) == "own"


def test_guardian_dry_run_returns_its_plan_mints_nothing_and_writes_nothing(env: Env) -> None:
    from shared.domain.models import StepRequest
    from shared.steps import run_step

    result = run_step(env.deps, StepRequest(step="guardian", reason="dry run"), dry_run=True)
    plan = result["result"]["plan"]
    assert [a["kind"] for a in plan["actions"]] == ["mint_certificates", "apply_webhook_configuration", "apply_secret"]
    assert all(a["reason"] for a in plan["actions"])
    assert [a["action"] for a in result["actions"]] == ["apply_webhook_configuration", "apply_secret"]
    assert result["result"]["certificates"] == "create" and result["result"]["webhook_drift"] == ["missing"]
    assert env.cluster.webhooks == {} and env.cluster.secrets == {}
    assert "PRIVATE KEY" not in json.dumps(result)
