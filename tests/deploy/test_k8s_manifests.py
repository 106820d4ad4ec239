"""infra/k8s: every manifest validates strictly, the kustomization renders, the relay is deployed as meant."""

from __future__ import annotations

import argparse

import kubernetes_validate
import pytest

from cli.main import build_parser
from tests.deploy.k8s import BASE, EXAMPLE, K8S, ROOT, by_kind, documents, kustomize

K8S_VERSION = "1.33"
NOT_API_OBJECTS = {"kustomization.yaml", "audit-policy.yaml"}  # read by kustomize / kube-apiserver, not applied


def manifest_files() -> list[str]:
    return sorted(str(p.relative_to(ROOT)) for p in K8S.rglob("*.yaml") if p.name not in NOT_API_OBJECTS)


@pytest.mark.parametrize("path", manifest_files())
def test_every_manifest_is_valid_strictly(path: str) -> None:
    for document in documents(ROOT / path):
        assert kubernetes_validate.validate(document, K8S_VERSION, strict=True)


def test_rendered_base_and_overlay_validate_and_hold_what_the_guide_lists() -> None:
    for path in (BASE, EXAMPLE):
        docs = kustomize(path)
        for document in docs:
            assert kubernetes_validate.validate(document, K8S_VERSION, strict=True)
        kinds = sorted({d["kind"] for d in docs})
        assert kinds == [
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "CustomResourceDefinition",
            "Deployment",
            "Namespace",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Secret",
            "Service",
            "ServiceAccount",
        ]
        assert all(d["metadata"]["labels"]["app.kubernetes.io/part-of"] == "clb-direct" for d in docs)
        policy = next(d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"] == "clb-direct-audit-policy")
        assert "kind: Policy" in policy["data"]["audit-policy.yaml"]


def test_relay_two_replicas_disruption_budget_probes_and_parsable_args() -> None:
    docs = kustomize(EXAMPLE)
    (deployment,) = by_kind(docs, "Deployment")
    (pdb,) = by_kind(docs, "PodDisruptionBudget")
    spec = deployment["spec"]
    assert spec["replicas"] == 2 and pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == spec["selector"]["matchLabels"]
    (container,) = spec["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["image"] == "ccr.ccs.tencentyun.com/my-team/clb-direct-relay:0.1.0"
    env = {e["name"]: e for e in container["env"]}
    assert env["CLB_DIRECT_ROUTER_URL"]["value"].endswith("/release/router")
    assert "value" not in env["CLB_DIRECT_RELAY_HMAC_KEY"]  # from a Secret, never inline
    parser = build_parser()
    parsed = parser.parse_args(container["args"])
    assert isinstance(parsed, argparse.Namespace) and parsed.command == "relay"
    (policy,) = by_kind(docs, "NetworkPolicy")
    assert policy["spec"]["ingress"][0]["from"] == [{"ipBlock": {"cidr": "10.0.0.0/24"}}]


def test_audit_policy_logs_what_the_router_reads_and_never_secrets() -> None:
    (policy,) = documents(BASE / "audit-policy.yaml")
    assert policy["apiVersion"] == "audit.k8s.io/v1" and policy["kind"] == "Policy"
    rules = policy["rules"]
    secret_rule = next(
        i for i, r in enumerate(rules) if any("secrets" in g["resources"] for g in r.get("resources", []))
    )
    pods_rule = next(
        i
        for i, r in enumerate(rules)
        if any("pods" in g["resources"] for g in r.get("resources", [])) and r["level"] != "None"
    )
    assert rules[secret_rule]["level"] == "None" and secret_rule < pods_rule  # first match wins
    assert rules[-1] == {"level": "None"}


def test_bootstrap_webhook_template_is_what_the_guardian_writes_behind_the_gateway() -> None:
    from shared.domain.webhook_config import desired_webhook_configuration

    (template,) = documents(K8S / "bootstrap" / "webhook-template.yaml")
    url = "https://API_GATEWAY_HOST/release/admission"
    assert template == desired_webhook_configuration(
        name="clb-direct-readiness-gate", url=url, ca_bundle_pem="", failure_policy="Ignore"
    )
    assert "caBundle" not in template["webhooks"][0]["clientConfig"]
