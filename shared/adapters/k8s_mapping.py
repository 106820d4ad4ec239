"""Pure translation between `kubernetes` client objects (Pods: the API's JSON) / API errors and the domain models.

Used by `shared.adapters.kubernetes_api.KubernetesCluster`; no I/O, so the mapping rules (which condition
means containers-ready, which ownerReference is the owner, how a gate condition patch looks, which HTTP
status means retry) are unit-tested on V1 model objects and their JSON. Patch shapes follow the API
server's strategic-merge rules.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any, TypeVar

import urllib3
from kubernetes.client import ApiException, V1Service

from shared.domain.errors import ClbDirectError, Conflict, NotFound, PermanentError, RetryableError
from shared.domain.models import ContainerPort, PodCondition, PodInfo, ServiceInfo, ServicePort
from wire_time import parse_rfc3339

T = TypeVar("T")

_LEADING_DIGITS = re.compile(r"^\s*(\d+)")
_CONDITION_STATUSES = ("True", "False", "Unknown")


def rfc3339(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch_rfc3339(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_version(major: str, minor: str) -> tuple[int, int]:
    """`/version` reports strings such as ("1", "28+") on managed clusters; keep the leading digits."""
    parsed = []
    for part, value in (("major", major), ("minor", minor)):
        match = _LEADING_DIGITS.match(value or "")
        if match is None:
            raise PermanentError(f"the API server reported an unparseable {part} version {value!r}")
        parsed.append(int(match.group(1)))
    return parsed[0], parsed[1]


def label_selector(selector: Mapping[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(selector.items()))


# ------------------------------------------------------------------------------------------ Pods


def wire_time(value: Any) -> str | None:
    """An RFC 3339 time of the API's JSON (`Z` or an offset, fractions or not) as UTC seconds with `Z`."""
    if not value:
        return None
    try:
        return rfc3339(parse_rfc3339(str(value).strip()))
    except ValueError:
        return None


def _condition(raw: Mapping[str, Any]) -> PodCondition:
    status = raw.get("status") if raw.get("status") in _CONDITION_STATUSES else "Unknown"
    return PodCondition(
        type=raw.get("type") or "",
        status=status,  # type: ignore[arg-type]
        reason=raw.get("reason"),
        message=raw.get("message"),
        last_transition_time=wire_time(raw.get("lastTransitionTime")),
    )


def pod_info(pod: Mapping[str, Any]) -> PodInfo:
    """A Pod as the API server's JSON has it (read with `_preload_content=False`): mapped straight from the
    JSON, since building the client's V1Pod model first cost more CPU than the rest of a Pod read."""
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    if not meta.get("name") or not meta.get("namespace") or not meta.get("uid"):
        raise PermanentError("the API server returned a Pod without metadata.name/namespace/uid")
    conditions = [_condition(c) for c in status.get("conditions") or []]
    by_type = {c.type: c.status for c in conditions}
    ports: list[ContainerPort] = []
    requested: set[str] = set()
    for container in spec.get("containers") or []:
        for port in container.get("ports") or []:
            protocol = port.get("protocol") if port.get("protocol") in ("TCP", "UDP", "SCTP") else "TCP"
            ports.append(ContainerPort(name=port.get("name"), container_port=port["containerPort"], protocol=protocol))
        resources = container.get("resources") or {}
        # Extended resources (tke eni-ip) may be given in limits only; requests then default to them.
        requested.update((resources.get("requests") or {}).keys())
        requested.update((resources.get("limits") or {}).keys())
    owner = next((ref for ref in meta.get("ownerReferences") or [] if ref.get("controller")), None)
    return PodInfo(
        namespace=meta["namespace"],
        name=meta["name"],
        uid=meta["uid"],
        resource_version=meta.get("resourceVersion") or "",
        labels=dict(meta.get("labels") or {}),
        annotations=dict(meta.get("annotations") or {}),
        ip=status.get("podIP") or None,
        node_name=spec.get("nodeName"),
        host_network=bool(spec.get("hostNetwork")),
        phase=status.get("phase") or "Pending",
        containers_ready=by_type.get("ContainersReady") == "True",
        ready=by_type.get("Ready") == "True",
        deletion_timestamp=wire_time(meta.get("deletionTimestamp")),
        creation_timestamp=wire_time(meta.get("creationTimestamp")),
        readiness_gates=[gate.get("conditionType") for gate in spec.get("readinessGates") or []],
        conditions=conditions,
        container_ports=ports,
        resource_requests=sorted(requested),
        owner_kind=owner.get("kind") if owner else None,
        owner_name=owner.get("name") if owner else None,
    )


def condition_patch(
    uid: str, resource_version: str, live: PodCondition | None, desired: PodCondition, now_epoch: float
) -> dict[str, Any] | None:
    """Strategic-merge patch for pods/status setting one condition, or None when nothing would change.

    `lastTransitionTime` keeps the live value unless the status flips (the API server does not maintain
    it for custom conditions). The UID and resourceVersion preconditions make a replaced Pod or a
    concurrent writer fail with 409 instead of being overwritten.
    """
    if (
        live is not None
        and live.status == desired.status
        and live.reason == desired.reason
        and live.message == desired.message
    ):
        return None
    if live is not None and live.status == desired.status:
        transition = live.last_transition_time
    elif desired.last_transition_time and (live is None or desired.last_transition_time != live.last_transition_time):
        transition = desired.last_transition_time  # the caller knows when the change happened
    else:
        # A desired condition copied from the live one carries the old time; a flip is "now".
        transition = epoch_rfc3339(now_epoch)
    entry: dict[str, Any] = {"type": desired.type, "status": desired.status}
    if transition is not None:
        entry["lastTransitionTime"] = transition
    for key, value, old in (
        ("reason", desired.reason, live.reason if live else None),
        ("message", desired.message, live.message if live else None),
    ):
        # SMP keeps fields the element omits; null removes a stale value.
        if value is not None or old is not None:
            entry[key] = value
    metadata = {"uid": uid, "resourceVersion": resource_version} if resource_version else {"uid": uid}
    return {"metadata": metadata, "status": {"conditions": [entry]}}


# ------------------------------------------------------------------------------------------ Services


def service_info(service: V1Service, *, claim_unclassed: bool = True) -> ServiceInfo:
    meta, spec, status = service.metadata, service.spec, service.status
    if meta is None or not meta.name or not meta.namespace or not meta.uid:
        raise PermanentError("the API server returned a Service without metadata.name/namespace/uid")
    ports = [
        ServicePort(name=p.name, port=p.port, protocol=p.protocol or "TCP", target_port=p.target_port)  # type: ignore[arg-type]
        for p in (spec.ports or [] if spec else [])
        # A CLB listener is TCP or UDP; SCTP ports cannot be served and are left out.
        if (p.protocol or "TCP") in ("TCP", "UDP")
    ]
    ingress = status.load_balancer.ingress if status and status.load_balancer else None
    return ServiceInfo(
        namespace=meta.namespace,
        name=meta.name,
        uid=meta.uid,
        resource_version=meta.resource_version or "",
        type=(spec.type if spec else None) or "ClusterIP",
        annotations=dict(meta.annotations or {}),
        labels=dict(meta.labels or {}),
        selector=dict((spec.selector if spec else None) or {}),
        ports=ports,
        finalizers=list(meta.finalizers or []),
        deletion_timestamp=rfc3339(meta.deletion_timestamp),
        ingress_ips=[entry.ip for entry in ingress or [] if entry.ip],
        load_balancer_class=(spec.load_balancer_class if spec else None) or None,
        claim_unclassed=claim_unclassed,
    )


# ------------------------------------------------------------------------------------------ errors


def status_message(exc: ApiException) -> str:
    """The Status object's message, or the HTTP reason when the body is not a Status."""
    try:
        body = json.loads(exc.body or "")
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return str(exc.reason or "no message")


def _retry_after(exc: ApiException) -> float:
    headers = exc.headers or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return max(float(value), 1.0) if value is not None else 2.0
    except (TypeError, ValueError):
        return 2.0


def call_api(what: str, send: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run one client call; API errors become typed errors, transport failures retryable ones."""
    try:
        return send(*args, **kwargs)
    except ApiException as exc:
        raise api_error(exc, what) from exc
    except urllib3.exceptions.HTTPError as exc:
        if _timed_out(exc):
            raise RetryableError(
                f"Kubernetes API {what}: no answer within CLB_DIRECT_KUBE_REQUEST_TIMEOUT_S ({exc}); "
                "the API server is overloaded or unreachable, the step is retried",
                delay_s=2.0,
                code="Timeout",
            ) from exc
        raise RetryableError(f"Kubernetes API {what}: connection failed: {exc}", delay_s=2.0) from exc


def _timed_out(exc: urllib3.exceptions.HTTPError) -> bool:
    """Did the request time out? urllib3 wraps the failure of a request it retried in MaxRetryError (its
    reason says which), and a refused connection (NewConnectionError) subclasses its connect timeout."""
    cause = getattr(exc, "reason", None) if isinstance(exc, urllib3.exceptions.MaxRetryError) else exc
    timeout = urllib3.exceptions.TimeoutError
    return isinstance(cause, timeout) and not isinstance(cause, urllib3.exceptions.NewConnectionError)


def api_error(exc: ApiException, what: str) -> ClbDirectError:
    """Map by HTTP status: 404 NotFound, 409 Conflict, 429/5xx retryable, the rest permanent."""
    status = int(exc.status or 0)
    message = f"Kubernetes API {what}: HTTP {status}: {status_message(exc)}"
    if status == 404:
        return NotFound(f"{message}; the object is gone, nothing to act on", code="NotFound")
    if status == 409:
        return Conflict(f"{message}; re-read the object and retry", delay_s=0.5, code="Conflict")
    if status == 429 or status >= 500 or status == 0:
        return RetryableError(f"{message}; the API server is busy or unreachable", delay_s=_retry_after(exc))
    hint = "grant the clb-direct role this permission" if status in (401, 403) else "fix the request"
    return PermanentError(f"{message}; {hint}", code=str(status))
