"""The resource types the cluster simulator serves, and their strategic-merge-patch metadata.

Used by the object store (scope, status subresource, generation rules), the patch engine (merge keys)
and the HTTP server (routing and discovery). Merge keys and list strategies mirror the
``x-kubernetes-patch-merge-key`` / ``x-kubernetes-patch-strategy`` markers of the upstream OpenAPI
schemas for the fields this project touches; a list that is not listed here is atomic (replaced).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# A list strategy: ("merge", key) merges elements by key; ("merge", None) is a set-like primitive list.
ListStrategy = tuple[str, "str | None"]

_OBJECT_META: dict[str, ListStrategy] = {
    "metadata.ownerReferences": ("merge", "uid"),
    "metadata.finalizers": ("merge", None),
}


def _pod_spec(prefix: str) -> dict[str, ListStrategy]:
    container_lists = ("containers", "initContainers", "ephemeralContainers")
    keys: dict[str, ListStrategy] = {
        f"{prefix}.volumes": ("merge", "name"),
        f"{prefix}.imagePullSecrets": ("merge", "name"),
        f"{prefix}.hostAliases": ("merge", "ip"),
    }
    for name in container_lists:
        keys[f"{prefix}.{name}"] = ("merge", "name")
        keys[f"{prefix}.{name}.ports"] = ("merge", "containerPort")
        keys[f"{prefix}.{name}.env"] = ("merge", "name")
        keys[f"{prefix}.{name}.volumeMounts"] = ("merge", "mountPath")
        keys[f"{prefix}.{name}.volumeDevices"] = ("merge", "devicePath")
    return keys


_CONDITIONS: dict[str, ListStrategy] = {"status.conditions": ("merge", "type")}


@dataclass(frozen=True)
class ResourceType:
    """One served resource: its REST identity and server-side rules."""

    plural: str
    kind: str
    group: str
    version: str
    namespaced: bool
    status_subresource: bool = False
    scale_subresource: bool = False
    custom: bool = False  # custom resources refuse strategic merge patch (415)
    tracks_generation: bool = False
    graceful_delete: bool = False
    returns_deleted_object: bool = False
    merge_keys: dict[str, ListStrategy] = field(default_factory=dict)
    short_names: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def patch_types(self) -> list[str]:
        accepted = ["application/json-patch+json", "application/merge-patch+json"]
        if not self.custom:
            accepted.append("application/strategic-merge-patch+json")
        return [*accepted, "application/apply-patch+yaml"]


RESOURCES: dict[str, ResourceType] = {
    r.plural: r
    for r in (
        ResourceType(
            "namespaces",
            "Namespace",
            "",
            "v1",
            namespaced=False,
            status_subresource=True,
            merge_keys={**_OBJECT_META, **_CONDITIONS},
            short_names=("ns",),
        ),
        ResourceType(
            "pods",
            "Pod",
            "",
            "v1",
            namespaced=True,
            status_subresource=True,
            tracks_generation=True,
            graceful_delete=True,
            returns_deleted_object=True,
            merge_keys={
                **_OBJECT_META,
                **_pod_spec("spec"),
                **_CONDITIONS,
                "status.podIPs": ("merge", "ip"),
                "status.hostIPs": ("merge", "ip"),
            },
            short_names=("po",),
        ),
        ResourceType(
            "services",
            "Service",
            "",
            "v1",
            namespaced=True,
            status_subresource=True,
            returns_deleted_object=True,
            merge_keys={**_OBJECT_META, **_CONDITIONS, "spec.ports": ("merge", "port")},
            short_names=("svc",),
        ),
        ResourceType("configmaps", "ConfigMap", "", "v1", namespaced=True, merge_keys=dict(_OBJECT_META)),
        ResourceType("secrets", "Secret", "", "v1", namespaced=True, merge_keys=dict(_OBJECT_META)),
        ResourceType("events", "Event", "", "v1", namespaced=True, merge_keys=dict(_OBJECT_META)),
        ResourceType(
            "deployments",
            "Deployment",
            "apps",
            "v1",
            namespaced=True,
            status_subresource=True,
            scale_subresource=True,
            tracks_generation=True,
            merge_keys={**_OBJECT_META, **_pod_spec("spec.template.spec"), **_CONDITIONS},
            short_names=("deploy",),
        ),
        ResourceType(
            "replicasets",
            "ReplicaSet",
            "apps",
            "v1",
            namespaced=True,
            status_subresource=True,
            scale_subresource=True,
            tracks_generation=True,
            merge_keys={**_OBJECT_META, **_pod_spec("spec.template.spec"), **_CONDITIONS},
            short_names=("rs",),
        ),
        ResourceType(
            "mutatingwebhookconfigurations",
            "MutatingWebhookConfiguration",
            "admissionregistration.k8s.io",
            "v1",
            namespaced=False,
            tracks_generation=True,
            merge_keys={**_OBJECT_META, "webhooks": ("merge", "name")},
        ),
        # RBAC objects are stored so that SelfSubjectAccessReview (``rbac.py``) can answer from them.
        ResourceType("roles", "Role", "rbac.authorization.k8s.io", "v1", namespaced=True),
        ResourceType("rolebindings", "RoleBinding", "rbac.authorization.k8s.io", "v1", namespaced=True),
        ResourceType("clusterroles", "ClusterRole", "rbac.authorization.k8s.io", "v1", namespaced=False),
        ResourceType("clusterrolebindings", "ClusterRoleBinding", "rbac.authorization.k8s.io", "v1", namespaced=False),
        ResourceType(
            "tkeserviceconfigs",
            "TkeServiceConfig",
            "cloud.tencent.com",
            "v1alpha1",
            namespaced=True,
            status_subresource=True,
            custom=True,
            tracks_generation=True,
        ),
    )
}

# events.k8s.io/v1 Events are a second view on the core Event storage (see ``events.py``).
EVENTS_V1 = ResourceType("events", "Event", "events.k8s.io", "v1", namespaced=True)


def resource_type(plural: str) -> ResourceType:
    """Look a resource up by plural name; unknown names are a programming error of the caller."""
    try:
        return RESOURCES[plural]
    except KeyError:
        raise KeyError(f"the cluster simulator does not serve {plural!r}; known: {sorted(RESOURCES)}") from None
