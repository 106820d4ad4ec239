"""What the relay forwards: writes to Pods/Services/the cluster ConfigMap/TkeServiceConfigs that can matter.

Called by the relay's audit endpoint and watch loops for every event before it is buffered. A Pod is
dropped when no direct-access Service in its namespace selects it, unless it carries our readiness
gate (it was a direct-access Pod: its unbind/release must still happen) or the cache is still cold.
The `SelectorCache` learns selectors from the Service objects the relay itself sees (watch events or
audit response bodies), so the filter needs no API calls.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from shared.domain.models import (
    CLUSTER_CONFIG_NAME,
    CLUSTER_CONFIG_NAMESPACE,
    GATE_CONDITION_TYPE,
)
from shared.domain.ownership import owns_service
from shared.domain.routing import RELEVANT_SUBRESOURCES, WRITE_VERBS, selects

FORWARDED_RESOURCES = frozenset({"pods", "services", "configmaps", "tkeserviceconfigs"})


def _is_direct_access_service(obj: Mapping[str, Any]) -> bool:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    annotations = meta.get("annotations") or {}
    # Forward both ownership modes' Services; the steps decide with the deployment's mode.
    return owns_service(
        service_type=spec.get("type"),
        annotations={str(k): str(v) for k, v in annotations.items()},
        load_balancer_class=spec.get("loadBalancerClass"),
    )


class SelectorCache:
    """namespace -> {service name -> selector} of direct-access Services; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_namespace: dict[str, dict[str, dict[str, str]]] = {}
        self.warm = False

    def observe_service(self, obj: Mapping[str, Any], *, deleted: bool = False) -> None:
        meta = obj.get("metadata") or {}
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        if not name:
            return
        with self._lock:
            services = self._by_namespace.setdefault(namespace, {})
            if deleted or not _is_direct_access_service(obj):
                services.pop(name, None)
            else:
                services[name] = dict((obj.get("spec") or {}).get("selector") or {})

    def mark_warm(self) -> None:
        self.warm = True

    def could_select(self, namespace: str, labels: Mapping[str, str]) -> bool:
        with self._lock:
            return any(selects(sel, labels) for sel in self._by_namespace.get(namespace, {}).values())

    def size(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._by_namespace.values())


def _pod_matters(pod: Mapping[str, Any], cache: SelectorCache) -> bool:
    meta = pod.get("metadata") or {}
    gates = {g.get("conditionType") for g in (pod.get("spec") or {}).get("readinessGates") or [] if isinstance(g, dict)}
    if GATE_CONDITION_TYPE in gates or not cache.warm:
        return True
    return cache.could_select(str(meta.get("namespace") or ""), meta.get("labels") or {})


def _config_matters(resource: str, namespace: str, name: str) -> bool:
    return resource != "configmaps" or (namespace == CLUSTER_CONFIG_NAMESPACE and name == CLUSTER_CONFIG_NAME)


def keep_audit_event(event: Mapping[str, Any], cache: SelectorCache) -> bool:
    """Forward this audit event? Also feeds Service bodies into the cache. May raise on wrong-typed
    fields: the caller then runs the full parser, which names the field (`relay.app`)."""
    ref = event.get("objectRef")
    if not isinstance(ref, dict):
        return False
    if event.get("stage") not in ("ResponseComplete", None) or event.get("verb") not in WRITE_VERBS:
        return False
    resource = ref.get("resource")
    if resource not in FORWARDED_RESOURCES or (ref.get("subresource") or "") not in RELEVANT_SUBRESOURCES[resource]:
        return False
    if not _config_matters(str(resource), str(ref.get("namespace") or ""), str(ref.get("name") or "")):
        return False
    status = event.get("responseStatus") or {}
    if isinstance(status, dict) and int(status.get("code") or 0) >= 300:
        return False
    body = event.get("responseObject")
    if resource == "services" and isinstance(body, dict) and body.get("kind") == "Service":
        cache.observe_service(
            body, deleted=event.get("verb") == "delete" and not (body.get("metadata") or {}).get("deletionTimestamp")
        )
    if resource == "pods" and isinstance(body, dict) and body.get("kind") == "Pod":
        return _pod_matters(body, cache)
    return True


def keep_watch_event(watch_type: str, resource: str, obj: Mapping[str, Any], cache: SelectorCache) -> bool:
    """Forward this watch event? Service events also maintain the cache."""
    meta = obj.get("metadata") or {}
    if resource == "services":
        cache.observe_service(obj, deleted=watch_type == "DELETED")
        return True
    if resource == "pods":
        return _pod_matters(obj, cache)
    return _config_matters(resource, str(meta.get("namespace") or ""), str(meta.get("name") or ""))
