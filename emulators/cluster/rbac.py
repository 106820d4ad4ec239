"""RBAC evaluation for the cluster simulator's SelfSubjectAccessReview endpoint.

The simulator does not enforce RBAC on every request (the real control-plane tier does); it answers
`POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews` the way the API server's RBAC authorizer
would, from the Role/ClusterRole/(Cluster)RoleBinding objects stored in it, for the user the bearer token
maps to. `system:admin` (and the `system:masters` group) may do everything. ServiceAccount users are
`system:serviceaccount:<namespace>:<name>`. Used by `clb-direct doctor` tests.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from emulators.cluster.store import ObjectStore

ADMINS = {"system:admin"}


def _subject_matches(subject: Mapping[str, Any], user: str) -> bool:
    kind = subject.get("kind")
    if kind == "User":
        return subject.get("name") == user
    if kind == "ServiceAccount":
        return user == f"system:serviceaccount:{subject.get('namespace')}:{subject.get('name')}"
    if kind == "Group":
        return subject.get("name") in ("system:authenticated", "system:serviceaccounts") or (
            subject.get("name") == f"system:serviceaccounts:{user.split(':')[2]}"
            if user.startswith("system:serviceaccount:")
            else False
        )
    return False


def _rules(store: ObjectStore, user: str, namespace: str | None) -> Iterator[Mapping[str, Any]]:
    for binding in store.list("clusterrolebindings")[0]:
        if any(_subject_matches(s, user) for s in binding.get("subjects") or []):
            role = store.get("clusterroles", None, binding["roleRef"]["name"])
            yield from (role or {}).get("rules") or []
    if namespace:
        for binding in store.list("rolebindings", namespace)[0]:
            if any(_subject_matches(s, user) for s in binding.get("subjects") or []):
                ref = binding["roleRef"]
                role = (
                    store.get("roles", namespace, ref["name"])
                    if ref.get("kind") == "Role"
                    else store.get("clusterroles", None, ref["name"])
                )
                yield from (role or {}).get("rules") or []


def _rule_allows(rule: Mapping[str, Any], attrs: Mapping[str, Any]) -> bool:
    resource = attrs.get("resource", "")
    if attrs.get("subresource"):
        resource = f"{resource}/{attrs['subresource']}"

    def has(field: str, value: str) -> bool:
        values = rule.get(field) or []
        return "*" in values or value in values

    names = rule.get("resourceNames") or []
    return (
        has("apiGroups", attrs.get("group", ""))
        and has("resources", resource)
        and has("verbs", attrs.get("verb", ""))
        and (not names or attrs.get("name") in names)
    )


def allowed(store: ObjectStore, user: str, attrs: Mapping[str, Any]) -> bool:
    if user in ADMINS:
        return True
    return any(_rule_allows(rule, attrs) for rule in _rules(store, user, attrs.get("namespace") or None))


def self_subject_access_review(store: ObjectStore, user: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """The review echoed back with `status.allowed` filled in, as the API server answers it."""
    attrs = dict((body.get("spec") or {}).get("resourceAttributes") or {})
    ok = allowed(store, user, attrs)
    status: dict[str, Any] = {"allowed": ok}
    if not ok:
        status["reason"] = f"no RBAC rule lets {user} {attrs.get('verb')} {attrs.get('resource')}"
    return {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "metadata": {"creationTimestamp": None},
        "spec": body.get("spec") or {},
        "status": status,
    }
