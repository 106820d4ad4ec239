"""Wire events -> `ObjectChange`: the translation at the router's edge (audit Events and watch events).

Called by `shared.router` for relay batches, raw EventLists and CLS records (and by tests replaying
recorded events). The audit Event is parsed with its wire model (`shared.events.audit`); the result is
the domain's `ObjectChange`, which the pure rules of `shared.domain.routing` dedupe, order and plan.
Malformed input raises `InvalidInput` naming the field.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from shared.domain.errors import InvalidInput
from shared.domain.models import CLUSTER_CONFIG_NAME, CLUSTER_CONFIG_NAMESPACE, GATE_CONDITION_TYPE
from shared.domain.routing import (
    KIND_BY_RESOURCE,
    RELEVANT_SUBRESOURCES,
    WRITE_VERBS,
    ChangeKind,
    ObjectChange,
)
from shared.events.audit import AuditEvent


def _short_hash(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:20]


def audit_event_id(audit_id: str, stage: str) -> str:
    """Dedupe key and event-log id for an audit event (all stages of a request share the auditID)."""
    return "a-" + _short_hash(audit_id, stage)


def watch_event_id(uid: str, resource_version: str, watch_type: str) -> str:
    return "w-" + _short_hash(uid, resource_version, watch_type)


# ---------------------------------------------------------------------------------------------- normalise


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{where} must be an object, got {type(value).__name__}")
    return value


def _sequence(value: object, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInput(f"{where} must be a list, got {type(value).__name__}")
    return value


def _text(value: object, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInput(f"{where} must be a string, got {type(value).__name__}")
    return value


def _string_map(value: object, where: str) -> dict[str, str]:
    pairs = _mapping(value, where)
    bad = next((k for k, v in pairs.items() if not isinstance(v, str)), None)
    if bad is not None:
        raise InvalidInput(f"{where}.{bad} must be a string, got {type(pairs[bad]).__name__}")
    return dict(pairs)


def _conditions(value: object, where: str) -> dict[str, str]:
    """Pod status conditions as {type: status}; every entry an object with string type and status."""
    found: dict[str, str] = {}
    for index, condition in enumerate(_sequence(value, where)):
        entry = _mapping(condition, f"{where}[{index}]")
        kind = _text(entry.get("type"), f"{where}[{index}].type")
        found[kind] = _text(entry.get("status"), f"{where}[{index}].status")
    return found


def _gate_types(value: object, where: str) -> set[str]:
    return {
        _text(_mapping(gate, f"{where}[{index}]").get("conditionType"), f"{where}[{index}].conditionType")
        for index, gate in enumerate(_sequence(value, where))
    }


def _facts(kind: ChangeKind, obj: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The planning facts of an object; `InvalidInput` names the first field of the wrong type."""
    meta = _mapping(obj.get("metadata"), f"{where}.metadata")
    spec = _mapping(obj.get("spec"), f"{where}.spec")
    status = _mapping(obj.get("status"), f"{where}.status")
    facts: dict[str, Any] = {
        "facts_known": True,
        "uid": _text(meta.get("uid"), f"{where}.metadata.uid"),
        "resource_version": _text(meta.get("resourceVersion"), f"{where}.metadata.resourceVersion"),
        "labels": _string_map(meta.get("labels"), f"{where}.metadata.labels"),
        "annotations": _string_map(meta.get("annotations"), f"{where}.metadata.annotations"),
        "deleting": bool(meta.get("deletionTimestamp")),
    }
    if kind == "Pod":
        conditions = _conditions(status.get("conditions"), f"{where}.status.conditions")
        gates = _gate_types(spec.get("readinessGates"), f"{where}.spec.readinessGates")
        gate_status = conditions.get(GATE_CONDITION_TYPE)
        facts.update(
            pod_ip=_text(status.get("podIP"), f"{where}.status.podIP") or None,
            containers_ready=conditions.get("ContainersReady") == "True",
            host_network=bool(spec.get("hostNetwork")),
            has_gate=GATE_CONDITION_TYPE in gates,
            gate_status=gate_status or None,
        )
    elif kind == "Service":
        facts.update(
            service_type=_text(spec.get("type"), f"{where}.spec.type") or "ClusterIP",
            selector=_string_map(spec.get("selector"), f"{where}.spec.selector"),
            load_balancer_class=_text(spec.get("loadBalancerClass"), f"{where}.spec.loadBalancerClass") or None,
        )
    return facts


def _change(**fields: Any) -> ObjectChange:
    try:
        return ObjectChange(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidInput(f"event field {'.'.join(map(str, first['loc']))}: {first['msg']}") from exc


def _relevant_config(kind: ChangeKind, namespace: str, name: str) -> bool:
    """Only one ConfigMap matters: kube-system/tke-service-controller-config."""
    return kind != "ClusterConfig" or (namespace == CLUSTER_CONFIG_NAMESPACE and name == CLUSTER_CONFIG_NAME)


def normalize_audit(raw: object) -> ObjectChange | None:
    """One audit Event -> a change, or None when it cannot matter (reads, failures, other resources).

    Raises `InvalidInput` naming the problem when the event is malformed.
    """
    if not isinstance(raw, dict):
        raise InvalidInput(f"audit event must be a JSON object, got {type(raw).__name__}")
    try:
        event = AuditEvent.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"audit event field {where!r}: {first['msg']}") from exc
    ref = event.object_ref
    if event.stage != "ResponseComplete" or event.verb not in WRITE_VERBS or ref is None:
        return None
    if ref.subresource not in RELEVANT_SUBRESOURCES.get(ref.resource, set()):
        return None
    if ref.resource == "tkeserviceconfigs" and ref.api_group not in ("", "cloud.tencent.com"):
        return None
    code = event.response_status.code if event.response_status else 0
    if code >= 300:
        return None  # the write failed: nothing changed
    kind = KIND_BY_RESOURCE[ref.resource]
    base: dict[str, Any] = {
        "event_id": audit_event_id(event.audit_id, event.stage),
        "source": "audit",
        "kind": kind,
        "verb": event.verb,
        "namespace": ref.namespace,
        "name": ref.name,
        "uid": ref.uid,
    }
    if event.verb == "deletecollection":
        return _change(**base, action="resync")
    body = event.response_object
    if isinstance(body, dict) and body.get("kind") not in (None, "Status"):
        meta = _mapping(body.get("metadata"), "responseObject.metadata")
        # generateName creates have an empty objectRef.name: the name is in the response (k8s #100466).
        base["name"] = _text(meta.get("name"), "responseObject.metadata.name") or ref.name
        base["namespace"] = _text(meta.get("namespace"), "responseObject.metadata.namespace") or ref.namespace
        base.update(_facts(kind, body, "responseObject"))
    if not base["name"]:
        if event.verb == "create":
            return None  # a Metadata-level generateName create: nothing to act on until the Pod changes
        raise InvalidInput(f"audit event {event.audit_id}: objectRef has no name for verb {event.verb!r}")
    if not _relevant_config(kind, base["namespace"], base["name"]):
        return None
    return _change(**base, action="delete" if event.verb == "delete" and not base.get("deleting") else "upsert")


def normalize_watch(watch_type: str, resource: str, obj: Mapping[str, Any]) -> ObjectChange | None:
    """One watch event (ADDED/MODIFIED/DELETED) -> a change. Raises `InvalidInput` on a malformed object."""
    kind = KIND_BY_RESOURCE.get(resource)
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    if kind is None or not isinstance(meta, dict) or not meta.get("name"):
        raise InvalidInput(f"watch {watch_type} {resource}: object has no metadata.name")
    name = _text(meta["name"], "object.metadata.name")
    namespace = _text(meta.get("namespace"), "object.metadata.namespace")
    if not _relevant_config(kind, namespace, name):
        return None
    facts = _facts(kind, obj, "object")
    return _change(
        event_id=watch_event_id(facts["uid"] or f"{namespace}/{name}", facts["resource_version"], watch_type),
        source="watch",
        kind=kind,
        action="delete" if watch_type == "DELETED" else "upsert",
        verb=watch_type.lower(),
        namespace=namespace,
        name=name,
        **facts,
    )
