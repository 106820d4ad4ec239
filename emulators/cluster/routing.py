"""URL routing and discovery documents for the simulator's Kubernetes API.

Called by ``server.py``: :func:`parse_path` maps a request path to the resource, namespace, name and
subresource it addresses (or to a discovery document), using the same URL layout the real client
generates (``/api/v1/namespaces/{ns}/pods/{name}/status``, ``/apis/{group}/{version}/…``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emulators.cluster.resources import EVENTS_V1, RESOURCES, ResourceType

SUBRESOURCES = {"status", "scale", "binding"}


@dataclass(frozen=True)
class Route:
    rtype: ResourceType  # EVENTS_V1 for the events.k8s.io view; storage is always RESOURCES[plural]
    namespace: str | None
    name: str | None
    subresource: str | None

    @property
    def events_v1(self) -> bool:
        return self.rtype is EVENTS_V1


def _served(group: str, version: str) -> dict[str, ResourceType]:
    served = {r.plural: r for r in RESOURCES.values() if r.group == group and r.version == version}
    if (group, version) == (EVENTS_V1.group, EVENTS_V1.version):
        served["events"] = EVENTS_V1
    return served


def group_versions() -> list[tuple[str, str]]:
    pairs = {(r.group, r.version) for r in RESOURCES.values() if r.group}
    pairs.add((EVENTS_V1.group, EVENTS_V1.version))
    return sorted(pairs)


def parse_path(path: str) -> Route | dict[str, Any] | None:
    """A ``Route``, a discovery document, or ``None`` when nothing is served at ``path``."""
    parts = [p for p in path.split("/") if p]
    if parts == ["api"]:
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
    if parts == ["apis"]:
        return api_group_list()
    if parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    served = _served(group, version)
    if not served:
        return None
    if not rest:
        return resource_list(group, version, served)
    namespace: str | None = None
    if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in SUBRESOURCES:
        namespace, rest = rest[1], rest[2:]
    rtype = served.get(rest[0])
    if rtype is None or len(rest) > 3:
        return None
    if rtype.namespaced and namespace is None and len(rest) > 1:
        return None  # a named namespaced object needs its namespace in the URL
    name = rest[1] if len(rest) > 1 else None
    subresource = rest[2] if len(rest) > 2 else None
    if subresource is not None and subresource not in SUBRESOURCES:
        return None
    return Route(rtype, namespace, name, subresource)


def api_group_list() -> dict[str, Any]:
    groups = []
    for group in sorted({g for g, _ in group_versions()}):
        versions = [{"groupVersion": f"{group}/{v}", "version": v} for g, v in group_versions() if g == group]
        groups.append({"name": group, "versions": versions, "preferredVersion": versions[0]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def resource_list(group: str, version: str, served: dict[str, ResourceType]) -> dict[str, Any]:
    verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
    resources: list[dict[str, Any]] = []
    for rtype in served.values():
        resources.append(
            {
                "name": rtype.plural,
                "singularName": rtype.kind.lower(),
                "namespaced": rtype.namespaced,
                "kind": rtype.kind,
                "verbs": verbs,
                "shortNames": list(rtype.short_names),
            }
        )
        if rtype.status_subresource:
            resources.append(
                {
                    "name": f"{rtype.plural}/status",
                    "singularName": "",
                    "namespaced": rtype.namespaced,
                    "kind": rtype.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
        if rtype.scale_subresource:
            resources.append(
                {
                    "name": f"{rtype.plural}/scale",
                    "singularName": "",
                    "namespaced": rtype.namespaced,
                    "group": "autoscaling",
                    "version": "v1",
                    "kind": "Scale",
                    "verbs": ["get", "patch", "update"],
                }
            )
    group_version = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}
