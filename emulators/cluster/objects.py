"""Per-kind server-side rules: defaulting and stamping on create, status resets, validation and the Scale view.

Called by the object store before it persists an object. Only what the project's callers observe is
modelled: the defaults the real apiserver fills in (so objects validate against the published schemas),
status reset on create for kinds with a status subresource, the Pod spec immutability rule (readiness
gates can only be injected at CREATE), and the ``autoscaling/v1`` Scale view of Deployments/ReplicaSets.
"""

from __future__ import annotations

import base64
import copy
import ipaddress
import itertools
import uuid
from datetime import datetime
from typing import Any

from emulators.cluster.errors import ApiError, bad_request, invalid
from emulators.cluster.resources import ResourceType
from emulators.cluster.simclock import format_datetime

_cluster_ips = itertools.count(10)
_node_ports = itertools.count(30000)


def _default_containers(spec: dict[str, Any]) -> None:
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or []:
            image = str(container.get("image", ""))
            tag_latest = ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")
            container.setdefault("imagePullPolicy", "Always" if tag_latest else "IfNotPresent")
            container.setdefault("terminationMessagePath", "/dev/termination-log")
            container.setdefault("terminationMessagePolicy", "File")
            container.setdefault("resources", {})
            for port in container.get("ports") or []:
                port.setdefault("protocol", "TCP")


def default_pod_spec(spec: dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    _default_containers(spec)


def qos_class(spec: dict[str, Any]) -> str:
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    resources = [c.get("resources") or {} for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    guaranteed = all(
        {"cpu", "memory"} <= set(r.get("limits") or {})
        and all((r.get("requests") or {}).get(k, v) == v for k, v in (r.get("limits") or {}).items())
        for r in resources
    )
    return "Guaranteed" if guaranteed else "Burstable"


def _default_service(spec: dict[str, Any]) -> None:
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec.get("clusterIP") != "None":
        address = spec.get("clusterIP") or str(ipaddress.ip_address("10.96.0.0") + next(_cluster_ips))
        spec["clusterIP"] = address
        spec["clusterIPs"] = spec.get("clusterIPs") or [address]
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    external = spec["type"] in ("LoadBalancer", "NodePort")
    if external:
        spec.setdefault("externalTrafficPolicy", "Cluster")
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))
        if external and "nodePort" not in port:
            port["nodePort"] = next(_node_ports)
    if spec["type"] == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)


def _default_workload(rtype: ResourceType, spec: dict[str, Any]) -> None:
    spec.setdefault("replicas", 1)
    if rtype.plural == "replicasets":
        spec.setdefault("minReadySeconds", 0)
    if rtype.plural == "deployments":
        strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
        if strategy.get("type", "RollingUpdate") == "RollingUpdate":
            strategy["type"] = "RollingUpdate"
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxSurge", "25%")
            rolling.setdefault("maxUnavailable", "25%")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
    template = spec.setdefault("template", {})
    template.setdefault("metadata", {})
    default_pod_spec(template.setdefault("spec", {}))


def _required(rtype: ResourceType, name: str, field: str) -> ApiError:
    return invalid(rtype.kind, rtype.group, name, field, cause_reason="FieldValueRequired", detail="Required value")


def check_create_identity(rtype: ResourceType, ns: str, obj: dict[str, Any]) -> None:
    """Refuse a resourceVersion, require a name or generateName; set namespace, kind and apiVersion."""
    meta = obj["metadata"]
    if meta.get("resourceVersion"):
        raise bad_request("resourceVersion should not be set on objects to be created")
    if ns:
        meta["namespace"] = ns
    obj["kind"], obj["apiVersion"] = rtype.kind, rtype.api_version
    if not meta.get("name") and not meta.get("generateName"):
        raise invalid(
            rtype.kind,
            rtype.group,
            "",
            "metadata.name",
            cause_reason="FieldValueRequired",
            detail="Required value: name or generateName is required",
        )


def prepare_for_create(rtype: ResourceType, obj: dict[str, Any]) -> None:
    """Fill server defaults and reset status in place; raise 422 for what the real server refuses."""
    name = obj["metadata"].get("name") or obj["metadata"].get("generateName", "")
    spec = obj.get("spec")
    if rtype.plural == "pods":
        if not isinstance(spec, dict) or not spec.get("containers"):
            raise _required(rtype, name, "spec.containers")
        default_pod_spec(spec)
        obj["status"] = {"phase": "Pending", "qosClass": qos_class(spec)}
    elif rtype.plural == "services":
        _default_service(obj.setdefault("spec", {}))
        obj["status"] = {"loadBalancer": {}}
    elif rtype.plural in ("deployments", "replicasets"):
        if not isinstance(spec, dict) or not spec.get("selector"):
            raise _required(rtype, name, "spec.selector")
        _default_workload(rtype, spec)
        obj["status"] = {} if rtype.plural == "deployments" else {"replicas": 0}
    elif rtype.plural == "namespaces":
        obj.setdefault("spec", {"finalizers": ["kubernetes"]})
        obj["status"] = {"phase": "Active"}
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
    elif rtype.plural == "secrets":
        obj.setdefault("type", "Opaque")
        fold_string_data(obj)
    elif rtype.plural == "mutatingwebhookconfigurations":
        for webhook in obj.get("webhooks") or []:
            _default_webhook(webhook)
    elif rtype.status_subresource:
        obj.pop("status", None)


def stamp_new(rtype: ResourceType, obj: dict[str, Any], now: datetime) -> None:
    """Server-owned metadata of a new object: a fresh uid and creationTimestamp, generation 1 if tracked."""
    meta = obj["metadata"]
    meta["uid"] = str(uuid.uuid4())
    meta["creationTimestamp"] = format_datetime(now)
    for transient in ("deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink"):
        meta.pop(transient, None)
    if rtype.tracks_generation:
        meta["generation"] = 1
    else:
        meta.pop("generation", None)


def _default_webhook(webhook: dict[str, Any]) -> None:
    webhook.setdefault("failurePolicy", "Fail")
    webhook.setdefault("matchPolicy", "Equivalent")
    webhook.setdefault("namespaceSelector", {})
    webhook.setdefault("objectSelector", {})
    webhook.setdefault("timeoutSeconds", 10)
    webhook.setdefault("reinvocationPolicy", "Never")
    for rule in webhook.get("rules") or []:
        rule.setdefault("scope", "*")


def fold_string_data(secret: dict[str, Any]) -> None:
    """The apiserver merges write-only ``stringData`` into base64 ``data`` and never stores it."""
    string_data = secret.pop("stringData", None) or {}
    if string_data:
        data = secret.setdefault("data", {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()


def prepare_for_update(rtype: ResourceType, old: dict[str, Any], new: dict[str, Any]) -> None:
    """Defaults that also apply on update (so a PUT of a partial webhook list validates)."""
    if rtype.plural == "secrets":
        fold_string_data(new)
    if rtype.plural == "mutatingwebhookconfigurations":
        for webhook in new.get("webhooks") or []:
            _default_webhook(webhook)
    if rtype.plural == "services" and isinstance(new.get("spec"), dict):
        spec = new["spec"]
        spec.setdefault("clusterIP", (old.get("spec") or {}).get("clusterIP"))
        spec.setdefault("clusterIPs", (old.get("spec") or {}).get("clusterIPs"))
        _default_service(spec)


_MUTABLE_POD_SPEC = ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds")


def check_pod_spec_update(old: dict[str, Any], new: dict[str, Any]) -> None:
    """Pod spec is immutable except images and a few fields (``pkg/apis/core/validation``)."""
    old_spec, new_spec = copy.deepcopy(old.get("spec") or {}), copy.deepcopy(new.get("spec") or {})
    for field in _MUTABLE_POD_SPEC:
        old_spec.pop(field, None)
        new_spec.pop(field, None)
    for key in ("containers", "initContainers"):
        for container in itertools.chain(old_spec.get(key) or [], new_spec.get(key) or []):
            container.pop("image", None)
    if old_spec != new_spec:
        name = old["metadata"]["name"]
        raise invalid(
            "Pod",
            "",
            name,
            "spec",
            cause_reason="FieldValueForbidden",
            detail="Forbidden: pod updates may not change fields other than `spec.containers[*].image`, "
            "`spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` "
            "(only additions to existing tolerations) or `spec.terminationGracePeriodSeconds`",
        )


def scale_view(obj: dict[str, Any]) -> dict[str, Any]:
    """The ``autoscaling/v1`` Scale a ``…/scale`` GET returns for a Deployment or ReplicaSet."""
    meta = obj["metadata"]
    selector = (obj.get("spec") or {}).get("selector") or {}
    labels = ",".join(f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items()))
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta
        },
        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
        "status": {"replicas": (obj.get("status") or {}).get("replicas", 0), "selector": labels},
    }


def spec_part(rtype: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
    """The fields whose change bumps ``metadata.generation``: everything but metadata and status."""
    skip = {"metadata", "status", "kind", "apiVersion"}
    return {k: v for k, v in obj.items() if k not in skip}
