"""Confirmed resourceVersions: what the router's stale-event filter may trust (no hint poisons the truth).

An event's resourceVersion is a hint: anyone who can reach the router's routes with a valid signature
(or a bug in a relay) could send a Service at resourceVersion 10^12, and if the router remembered it,
every real event for that Service would be judged stale for days. So the router never remembers a
version from an event. The versions it compares against are recorded here, only from objects the API
server returned: `VersionConfirmingCluster` wraps the `Cluster` port that `shared.deps.build_deps` gives
the step functions, and every Service or Pod read through it (get, list) records
`rv:<Kind>:<namespace>/<name>#<uid>` = its live resourceVersion. A hint older than the confirmed live
version is stale; anything else is routed and the step re-reads the object (rule: events are hints).
Keyed by UID, so a recreated object never inherits its predecessor's versions. An in-process cache
skips re-writing a version that did not change, so a steady reconcile pass costs no store writes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shared.domain.models import ObjectRef, PodCondition, PodInfo, ServiceInfo
from shared.keys import version_key
from shared.ports import Clock, Cluster, KeyValueStore

_CACHE_LIMIT = 20_000


class VersionConfirmingCluster:
    """A `Cluster` that records the live resourceVersion of every Service and Pod it reads."""

    def __init__(self, inner: Cluster, store: KeyValueStore, clock: Clock, *, ttl_s: float) -> None:
        self.inner = inner
        self._store, self._clock, self._ttl_s = store, clock, ttl_s
        self._written: dict[str, tuple[str, float]] = {}

    def _confirm(self, kind: str, namespace: str, name: str, uid: str, resource_version: str) -> None:
        if not uid or not resource_version.isdigit():
            return
        key, now = version_key(kind, namespace, name, uid), self._clock.now()
        written = self._written.get(key)
        # Re-written once half its TTL has passed, so a long-lived process never lets it expire unseen.
        if written is not None and written[0] == resource_version and now - written[1] < self._ttl_s / 2:
            return
        if len(self._written) >= _CACHE_LIMIT:
            self._written.clear()
        self._store.kv_set(key, resource_version, ttl_s=self._ttl_s, now=now)
        self._written[key] = (resource_version, now)

    def _pods(self, pods: list[PodInfo]) -> list[PodInfo]:
        for pod in pods:
            self._confirm("Pod", pod.namespace, pod.name, pod.uid, pod.resource_version)
        return pods

    def _services(self, services: list[ServiceInfo]) -> list[ServiceInfo]:
        for service in services:
            self._confirm("Service", service.namespace, service.name, service.uid, service.resource_version)
        return services

    # --- reads that confirm versions ----------------------------------------------------------------
    def get_service(self, namespace: str, name: str) -> ServiceInfo | None:
        service = self.inner.get_service(namespace, name)
        return None if service is None else self._services([service])[0]

    def list_services(self, namespace: str | None = None) -> list[ServiceInfo]:
        return self._services(self.inner.list_services(namespace))

    def get_pod(self, namespace: str, name: str) -> PodInfo | None:
        pod = self.inner.get_pod(namespace, name)
        return None if pod is None else self._pods([pod])[0]

    def list_pods(self, namespace: str, selector: Mapping[str, str]) -> list[PodInfo]:
        return self._pods(self.inner.list_pods(namespace, selector))

    def list_pods_with_ip(self, ip: str) -> list[PodInfo]:
        return self._pods(self.inner.list_pods_with_ip(ip))

    # --- everything else passes through -------------------------------------------------------------
    def server_version(self) -> tuple[int, int]:
        return self.inner.server_version()

    def get_tke_service_config(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.inner.get_tke_service_config(namespace, name)

    def get_cluster_config(self) -> dict[str, str]:
        return self.inner.get_cluster_config()

    def set_pod_condition(self, pod: PodInfo, condition: PodCondition) -> bool:
        return self.inner.set_pod_condition(pod, condition)

    def patch_service_metadata(
        self,
        namespace: str,
        name: str,
        *,
        annotations: Mapping[str, str | None] | None = None,
        add_finalizers: Sequence[str] = (),
        remove_finalizers: Sequence[str] = (),
    ) -> None:
        self.inner.patch_service_metadata(
            namespace, name, annotations=annotations, add_finalizers=add_finalizers, remove_finalizers=remove_finalizers
        )

    def set_service_load_balancer_status(self, namespace: str, name: str, ingress_ips: Sequence[str]) -> None:
        self.inner.set_service_load_balancer_status(namespace, name, ingress_ips)

    def emit_event(self, regarding: ObjectRef, *, type: str, reason: str, message: str) -> None:
        self.inner.emit_event(regarding, type=type, reason=reason, message=message)

    def get_mutating_webhook_configuration(self, name: str) -> dict[str, Any] | None:
        return self.inner.get_mutating_webhook_configuration(name)

    def apply_mutating_webhook_configuration(self, body: dict[str, Any]) -> None:
        self.inner.apply_mutating_webhook_configuration(body)

    def get_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        return self.inner.get_secret(namespace, name)

    def apply_secret(self, namespace: str, name: str, data: Mapping[str, str]) -> None:
        self.inner.apply_secret(namespace, name, data)

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if callable(close):
            close()
