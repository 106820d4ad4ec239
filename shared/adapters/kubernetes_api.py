"""`KubernetesCluster`: the `Cluster` port over the real `kubernetes` Python client.

Built once per cold start by `shared.deps.build_deps` (`KubernetesCluster.from_settings`: kubeconfig
path/context, else in-cluster config) or directly from an `ApiClient` in tests. The service, flip,
reconcile, guardian and admission code call it. Reads map V1 objects to domain models
(`k8s_mapping`); writes use the narrowest verb that is safe under concurrency: strategic-merge on
pods/status with UID + resourceVersion preconditions for the gate, merge patches with a
resourceVersion precondition for finalizers, PUT with the current resourceVersion for the webhook
configuration. API errors become typed errors by HTTP status; every request gives up after
`kube_request_timeout_s` (a retryable error).
"""

from __future__ import annotations

import base64
import json
import tempfile
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

from shared.adapters import k8s_mapping as km
from shared.adapters.k8s_events import COMPONENT, MERGE_PATCH, EventRecorder
from shared.clock import SystemClock
from shared.config import Settings
from shared.domain.errors import ConfigError, Conflict, NotFound
from shared.domain.models import (
    CLUSTER_CONFIG_NAME,
    CLUSTER_CONFIG_NAMESPACE,
    ObjectRef,
    PodCondition,
    PodInfo,
    ServiceInfo,
)
from shared.logging import get_logger
from shared.ports import Clock

T = TypeVar("T")

log = get_logger("shared.adapters.kubernetes")

TKE_SERVICE_CONFIG = ("cloud.tencent.com", "v1alpha1", "tkeserviceconfigs")
CONFLICT_RETRIES = 5
LIST_PAGE = 500


class KubernetesCluster:
    """The Kubernetes API as the steps see it."""

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        clock: Clock | None = None,
        event_window_s: float = 600.0,
        event_cache_size: int = 512,
        reporting_instance: str = COMPONENT,
        claim_unclassed: bool = True,
        request_timeout_s: float = 10.0,
    ) -> None:
        self._api = api_client
        # The client waits forever by default; every call made here passes this as `_request_timeout`.
        self._request_timeout_s = request_timeout_s
        # Settings.service_ownership: False = only Services of our loadBalancerClass are ours.
        self._claim_unclassed = claim_unclassed
        self._core = client.CoreV1Api(api_client)
        self._custom = client.CustomObjectsApi(api_client)
        self._admission = client.AdmissionregistrationV1Api(api_client)
        self._version = client.VersionApi(api_client)
        self._clock: Clock = clock or SystemClock()
        self._recorder = EventRecorder(
            self._core,
            self._clock,
            window_s=event_window_s,
            cache_size=event_cache_size,
            reporting_instance=reporting_instance,
            request_timeout_s=request_timeout_s,
        )

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Clock | None = None) -> KubernetesCluster:
        configuration = client.Configuration()
        try:
            if settings.kube_api_server and settings.kube_token:
                _token_configuration(configuration, settings)
            elif settings.kubeconfig:
                config.load_kube_config(  # type: ignore[no-untyped-call]
                    config_file=settings.kubeconfig,
                    context=settings.kube_context,
                    client_configuration=configuration,
                )
            else:
                try:
                    config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
                except ConfigException:
                    config.load_kube_config(  # type: ignore[no-untyped-call]
                        context=settings.kube_context, client_configuration=configuration
                    )
        except (ConfigException, OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot configure the Kubernetes client: {exc}; set CLB_DIRECT_KUBECONFIG (and "
                "CLB_DIRECT_KUBE_CONTEXT) or run inside the cluster with a service account"
            ) from exc
        return cls(
            client.ApiClient(configuration),
            clock=clock,
            claim_unclassed=settings.service_ownership == "annotation",
            request_timeout_s=settings.kube_request_timeout_s,
        )

    @property
    def api_client(self) -> client.ApiClient:
        """The configured client (`clb-direct doctor` sends SelfSubjectAccessReviews with it)."""
        return self._api

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]

    # ------------------------------------------------------------------------------------ plumbing

    def _call(self, what: str, send: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return km.call_api(what, send, *args, _request_timeout=self._request_timeout_s, **kwargs)

    def _optional(self, what: str, send: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        try:
            return self._call(what, send, *args, **kwargs)
        except NotFound:
            return None

    # ------------------------------------------------------------------------------------ reads

    def server_version(self) -> tuple[int, int]:
        info = self._call("GET /version", self._version.get_code)
        return km.parse_version(info.major, info.minor)

    def get_service(self, namespace: str, name: str) -> ServiceInfo | None:
        svc = self._optional(f"get Service {namespace}/{name}", self._core.read_namespaced_service, name, namespace)
        return km.service_info(svc, claim_unclassed=self._claim_unclassed) if svc is not None else None

    def list_services(self, namespace: str | None = None) -> list[ServiceInfo]:
        found: list[ServiceInfo] = []
        token: str | None = None
        while True:
            if namespace is None:
                result = self._call(
                    "list Services in all namespaces",
                    self._core.list_service_for_all_namespaces,
                    limit=LIST_PAGE,
                    _continue=token,
                )
            else:
                result = self._call(
                    f"list Services in {namespace}",
                    self._core.list_namespaced_service,
                    namespace,
                    limit=LIST_PAGE,
                    _continue=token,
                )
            found.extend(km.service_info(item, claim_unclassed=self._claim_unclassed) for item in result.items)
            token = result.metadata.var_continue if result.metadata else None
            if not token:
                return found

    def _json(self, what: str, send: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """The response body as JSON, without the client's model objects (Pods: most of a read's CPU)."""
        response = self._call(what, send, *args, _preload_content=False, **kwargs)
        try:
            return json.loads(response.data)
        finally:
            response.release_conn()

    def _optional_json(self, what: str, send: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return self._json(what, send, *args, **kwargs)
        except NotFound:
            return None

    def get_pod(self, namespace: str, name: str) -> PodInfo | None:
        pod = self._optional_json(f"get Pod {namespace}/{name}", self._core.read_namespaced_pod, name, namespace)
        return km.pod_info(pod) if pod is not None else None

    def list_pods(self, namespace: str, selector: Mapping[str, str]) -> list[PodInfo]:
        """Pods matching a Service selector. An empty selector selects nothing, as for a Service
        (Kubernetes manages no endpoints for a selector-less Service) — never the whole namespace."""
        if not selector:
            return []
        labels = km.label_selector(selector)
        found: list[PodInfo] = []
        token: str | None = None
        while True:
            result = self._json(
                f"list Pods in {namespace} with {labels}",
                self._core.list_namespaced_pod,
                namespace,
                label_selector=labels,
                limit=LIST_PAGE,
                _continue=token,
            )
            found.extend(km.pod_info(item) for item in result.get("items") or [])
            token = (result.get("metadata") or {}).get("continue")
            if not token:
                return found

    def list_pods_with_ip(self, ip: str) -> list[PodInfo]:
        """Pods in all namespaces with this Pod IP: one call, the server filters (`status.podIP` is a
        supported Pod field selector), so nothing else is listed."""
        result = self._json(
            f"list Pods with IP {ip}",
            self._core.list_pod_for_all_namespaces,
            field_selector=f"status.podIP={ip}",
        )
        return [km.pod_info(item) for item in result.get("items") or []]

    def get_tke_service_config(self, namespace: str, name: str) -> dict[str, Any] | None:
        group, version, plural = TKE_SERVICE_CONFIG
        found = self._optional(
            f"get TkeServiceConfig {namespace}/{name}",
            self._custom.get_namespaced_custom_object,
            group,
            version,
            namespace,
            plural,
            name,
        )
        return dict(found) if isinstance(found, dict) else None

    def get_cluster_config(self) -> dict[str, str]:
        cm = self._optional(
            f"get ConfigMap {CLUSTER_CONFIG_NAMESPACE}/{CLUSTER_CONFIG_NAME}",
            self._core.read_namespaced_config_map,
            CLUSTER_CONFIG_NAME,
            CLUSTER_CONFIG_NAMESPACE,
        )
        return dict(cm.data or {}) if cm is not None else {}

    # ------------------------------------------------------------------------------------ Pod gate

    def set_pod_condition(self, pod: PodInfo, condition: PodCondition) -> bool:
        what = f"set condition {condition.type} on Pod {pod.namespace}/{pod.name}"
        for _ in range(CONFLICT_RETRIES):
            live = self._optional_json(what, self._core.read_namespaced_pod_status, pod.name, pod.namespace)
            if live is None:
                return False
            current = km.pod_info(live)
            if current.uid != pod.uid:
                log.info("gate.pod_replaced", namespace=pod.namespace, pod=pod.name, uid=pod.uid)
                return False
            body = km.condition_patch(
                pod.uid, current.resource_version, current.condition(condition.type), condition, self._clock.now()
            )
            if body is None:
                return False
            try:
                self._call(what, self._core.patch_namespaced_pod_status, pod.name, pod.namespace, body)
            except NotFound:
                return False
            except Conflict:
                continue
            return True
        raise Conflict(
            f"Kubernetes API {what}: still conflicting after {CONFLICT_RETRIES} attempts; retry the step",
            delay_s=1.0,
            code="Conflict",
        )

    # ------------------------------------------------------------------------------------ Services

    def patch_service_metadata(
        self,
        namespace: str,
        name: str,
        *,
        annotations: Mapping[str, str | None] | None = None,
        add_finalizers: Sequence[str] = (),
        remove_finalizers: Sequence[str] = (),
    ) -> None:
        """Merge-patch annotations (None removes one) and finalizers. The finalizer list is replaced as a
        whole, so the patch carries the resourceVersion it was computed from; a 409 re-reads and retries.
        A vanished Service has nothing left to patch."""
        what = f"patch metadata of Service {namespace}/{name}"
        for _ in range(CONFLICT_RETRIES):
            live = self.get_service(namespace, name)
            if live is None:
                log.info("service.vanished", namespace=namespace, service=name)
                return
            metadata: dict[str, Any] = {}
            changed = {key: value for key, value in (annotations or {}).items() if live.annotations.get(key) != value}
            if changed:
                metadata["annotations"] = changed
            finalizers = [f for f in live.finalizers if f not in remove_finalizers]
            finalizers += [f for f in dict.fromkeys(add_finalizers) if f not in finalizers]
            if finalizers != live.finalizers:
                metadata["finalizers"] = finalizers
                metadata["resourceVersion"] = live.resource_version
            if not metadata:
                return
            try:
                self._call(
                    what,
                    self._core.patch_namespaced_service,
                    name,
                    namespace,
                    {"metadata": metadata},
                    _content_type=MERGE_PATCH,
                )
            except NotFound:
                return
            except Conflict:
                continue
            return
        raise Conflict(f"Kubernetes API {what}: still conflicting after {CONFLICT_RETRIES} attempts", code="Conflict")

    def set_service_load_balancer_status(self, namespace: str, name: str, ingress_ips: Sequence[str]) -> None:
        live = self.get_service(namespace, name)
        if live is None or live.ingress_ips == list(ingress_ips):
            return
        body = {"status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ingress_ips]}}}
        try:
            self._call(
                f"set status.loadBalancer of Service {namespace}/{name}",
                self._core.patch_namespaced_service_status,
                name,
                namespace,
                body,
                _content_type=MERGE_PATCH,
            )
        except NotFound:
            return

    # ------------------------------------------------------------------------------------ Events

    def emit_event(self, regarding: ObjectRef, *, type: str, reason: str, message: str) -> None:
        """Best effort and aggregated: see `k8s_events.EventRecorder`."""
        self._recorder.emit(regarding, type=type, reason=reason, message=message)

    # ------------------------------------------------------------------------------------ webhook, Secrets

    def get_mutating_webhook_configuration(self, name: str) -> dict[str, Any] | None:
        found = self._optional(
            f"get MutatingWebhookConfiguration {name}",
            self._admission.read_mutating_webhook_configuration,
            name,
        )
        if found is None:
            return None
        data: dict[str, Any] = self._api.sanitize_for_serialization(found)  # type: ignore[no-untyped-call]
        return data

    def apply_mutating_webhook_configuration(self, body: dict[str, Any]) -> None:
        name = str(body.get("metadata", {}).get("name") or "")
        what = f"apply MutatingWebhookConfiguration {name}"
        for _ in range(CONFLICT_RETRIES):
            live = self.get_mutating_webhook_configuration(name)
            try:
                if live is None:
                    self._call(
                        what,
                        self._admission.create_mutating_webhook_configuration,
                        client.V1MutatingWebhookConfiguration.model_validate(body),
                    )
                else:
                    desired = {
                        **body,
                        "metadata": {**body["metadata"], "resourceVersion": live["metadata"]["resourceVersion"]},
                    }
                    self._call(
                        what,
                        self._admission.replace_mutating_webhook_configuration,
                        name,
                        client.V1MutatingWebhookConfiguration.model_validate(desired),
                    )
            except Conflict:
                continue  # someone else wrote it (or created it first): re-read and replace
            return
        raise Conflict(f"Kubernetes API {what}: still conflicting after {CONFLICT_RETRIES} attempts", code="Conflict")

    def get_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        secret = self._optional(f"get Secret {namespace}/{name}", self._core.read_namespaced_secret, name, namespace)
        if secret is None:
            return None
        return {key: base64.b64decode(value).decode("utf-8") for key, value in (secret.data or {}).items()}

    def apply_secret(self, namespace: str, name: str, data: Mapping[str, str]) -> None:
        encoded = {key: base64.b64encode(value.encode("utf-8")).decode("ascii") for key, value in data.items()}
        what = f"apply Secret {namespace}/{name}"
        for _ in range(CONFLICT_RETRIES):
            live = self._optional(what, self._core.read_namespaced_secret, name, namespace)
            try:
                if live is None:
                    body = {"metadata": {"name": name, "namespace": namespace}, "type": "Opaque", "data": encoded}
                    self._call(
                        what, self._core.create_namespaced_secret, namespace, client.V1Secret.model_validate(body)
                    )
                else:
                    meta = live.metadata or client.V1ObjectMeta()
                    body = {
                        "metadata": {
                            "name": name,
                            "namespace": namespace,
                            "resourceVersion": meta.resource_version,
                            "labels": meta.labels or {},
                            "annotations": meta.annotations or {},
                        },
                        "type": live.type or "Opaque",
                        "data": encoded,
                    }
                    self._call(
                        what,
                        self._core.replace_namespaced_secret,
                        name,
                        namespace,
                        client.V1Secret.model_validate(body),
                    )
            except Conflict:
                continue
            return
        raise Conflict(f"Kubernetes API {what}: still conflicting after {CONFLICT_RETRIES} attempts", code="Conflict")


def _token_configuration(configuration: client.Configuration, settings: Settings) -> None:
    """API server URL + CA + bearer token from settings (the token may come from Secrets Manager)."""
    assert settings.kube_api_server is not None and settings.kube_token is not None
    configuration.host = settings.kube_api_server.rstrip("/")
    configuration.api_key = {"authorization": f"Bearer {settings.kube_token.get_secret_value()}"}
    if settings.kube_ca_data:
        pem = base64.b64decode(settings.kube_ca_data, validate=True)
        # The client wants a file; SCF's /tmp is the writable place (512 MB, per container).
        handle = tempfile.NamedTemporaryFile(prefix="clb-direct-ca-", suffix=".crt", delete=False)  # noqa: SIM115
        with handle:
            handle.write(pem)
        configuration.ssl_ca_cert = handle.name
