"""RBAC in infra/k8s equals what the code calls, both ways: nothing missing (a 403 in production), nothing unused.

The calls are derived from the source: every `kubernetes` client method the functions' adapter
(shared/adapters/kubernetes_api.py, k8s_events.py) and the relay (relay/*.py) reference is mapped to the
verb and resource the API server authorises (read_namespaced_pod_status -> get pods/status). A name-scoped
call (the TKE ConfigMap, the webhook configuration, the guardian's Secret) must be granted by name.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

from shared.adapters.kubernetes_api import TKE_SERVICE_CONFIG
from shared.config import Settings
from shared.domain.models import CLUSTER_CONFIG_NAME
from tests.deploy.k8s import BASE, ROOT, by_kind, kustomize

FUNCTION_SOURCES = ["shared/adapters/kubernetes_api.py", "shared/adapters/k8s_events.py"]
RELAY_SOURCES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "relay").glob("*.py"))
VERBS = {
    "read": "get",
    "get": "get",
    "list": "list",
    "patch": "patch",
    "replace": "update",
    "create": "create",
    "delete": "delete",
}
RESOURCES = {
    "pod": ("", "pods"),
    "pod_status": ("", "pods/status"),
    "service": ("", "services"),
    "service_status": ("", "services/status"),
    "config_map": ("", "configmaps"),
    "secret": ("", "secrets"),
    "event": ("", "events"),
    "mutating_webhook_configuration": ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
    "custom_object": (TKE_SERVICE_CONFIG[0], TKE_SERVICE_CONFIG[2]),  # the only custom resource we touch
    "token_review": ("authentication.k8s.io", "tokenreviews"),
    "subject_access_review": ("authorization.k8s.io", "subjectaccessreviews"),
}
SETTINGS = Settings()
# Name-scoped objects: the grant must carry the name.
NAMED = {
    ("", "configmaps"): CLUSTER_CONFIG_NAME,
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"): SETTINGS.webhook_configuration_name,
    ("", "secrets"): SETTINGS.webhook_secret_name,
}
Grant = tuple[str, str, str]  # (apiGroup, resource, verb)


def client_calls(paths: Iterable[str]) -> set[str]:
    """Names of kubernetes client API methods referenced in the modules (called or passed as callables)."""
    names: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse((ROOT / path).read_text())):
            if isinstance(node, ast.Attribute) and node.attr.split("_", 1)[0] in VERBS and "_" in node.attr:
                value = node.value
                if isinstance(value, ast.Attribute) and value.attr in (
                    "_core",
                    "_custom",
                    "_admission",
                    "_auth",
                    "_authz",
                ):
                    names.add(node.attr)
    return names


def to_grant(method: str, *, watches: bool) -> set[Grant]:
    verb, rest = method.split("_", 1)
    for noise in ("namespaced_", "cluster_", "_for_all_namespaces"):
        rest = rest.replace(noise, "")
    assert rest in RESOURCES, f"map the kubernetes method {method} to its resource in RESOURCES"
    group, resource = RESOURCES[rest]
    grants = {(group, resource, VERBS[verb])}
    if watches and VERBS[verb] == "list":
        grants.add((group, resource, "watch"))
    return grants


def derived(paths: Iterable[str], *, watches: bool) -> set[Grant]:
    return {g for m in client_calls(paths) for g in to_grant(m, watches=watches)}


def granted(docs: list[dict], subject: str) -> tuple[set[Grant], dict[Grant, set[str]]]:
    roles = {
        (d["kind"], d["metadata"]["name"], d["metadata"].get("namespace")): d
        for d in docs
        if d["kind"] in ("Role", "ClusterRole")
    }
    grants: set[Grant] = set()
    names: dict[Grant, set[str]] = {}
    for binding in by_kind(docs, "RoleBinding") + by_kind(docs, "ClusterRoleBinding"):
        if not any(s["name"] == subject for s in binding["subjects"]):
            continue
        ref = binding["roleRef"]
        namespace = binding["metadata"].get("namespace") if ref["kind"] == "Role" else None
        for rule in roles[(ref["kind"], ref["name"], namespace)]["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        grant = (group, resource, verb)
                        grants.add(grant)
                        if "resourceNames" in rule:
                            names.setdefault(grant, set()).update(rule["resourceNames"])
    return grants, names


def check(subject: str, calls: set[Grant]) -> None:
    docs = kustomize(BASE)
    grants, names = granted(docs, subject)
    # create cannot be authorised by name: a named Secret is instead created by the manifests themselves.
    precreated = (
        {("", "secrets", "create")}
        if any(d["metadata"]["name"] == SETTINGS.webhook_secret_name for d in by_kind(docs, "Secret"))
        else set()
    )
    assert sorted(calls - grants - precreated) == [], f"{subject}: called but not granted (403 in production)"
    assert sorted(grants - calls) == [], f"{subject}: granted but never called"
    for grant, allowed in names.items():
        assert allowed == {NAMED[grant[:2]]}, (subject, grant, allowed)
    for grant in calls & grants:
        if grant[:2] in NAMED and grant[2] != "create":
            assert grant in names, f"{subject}: {grant} must be limited to {NAMED[grant[:2]]}"


def test_functions_rbac_matches_the_adapter_calls() -> None:
    calls = derived(FUNCTION_SOURCES, watches=False)
    # The reads a gate flip does before its write (the defect that hung every rollout):
    assert ("", "pods/status", "get") in calls and ("", "pods/status", "patch") in calls
    check("clb-direct-functions", calls)


def test_relay_rbac_matches_the_watches() -> None:
    calls = derived(RELAY_SOURCES, watches=True)
    assert ("", "pods", "watch") in calls
    check("clb-direct-relay", calls)


def test_no_secret_can_be_created_or_listed() -> None:
    docs = kustomize(BASE)
    for role in by_kind(docs, "Role") + by_kind(docs, "ClusterRole"):
        for rule in role["rules"]:
            if "secrets" in rule["resources"] or "*" in rule["resources"]:
                assert set(rule["verbs"]) <= {"get", "update"} and rule.get("resourceNames"), role["metadata"]


def test_derivation_sees_a_method_passed_as_a_callable(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("class C:\n    def f(self):\n        return call(self._core.read_namespaced_pod_status, 'p')\n")
    assert client_calls([str(source)]) == {"read_namespaced_pod_status"}
    assert to_grant("list_pod_for_all_namespaces", watches=True) == {("", "pods", "list"), ("", "pods", "watch")}


def test_doctor_checks_exactly_the_permissions_the_adapter_needs() -> None:
    from shared.permissions import function_permissions

    table = {(p.group, p.resource, p.verb) for p in function_permissions(SETTINGS)}
    calls = derived(FUNCTION_SOURCES, watches=False) - {("", "secrets", "create")}  # the Secret is pre-created
    assert table == calls
    for permission in function_permissions(SETTINGS):
        if (permission.group, permission.resource) in NAMED and permission.verb != "create":
            assert permission.name == NAMED[(permission.group, permission.resource)], permission
