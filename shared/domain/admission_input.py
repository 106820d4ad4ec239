"""Shape checks for the Pod in an AdmissionReview, run before the admission step does any I/O.

Called by `shared.domain.admission.parse_review`. The admission endpoint is public (API gateway), so a
review can come from anyone: before the namespace turns into a Kubernetes list and a KV write, and
before the Pod's fields reach the planning code, this module checks that the namespace is a DNS-1123
label, the name (or generateName) a DNS-1123 subdomain, and that metadata, labels, spec, readinessGates
and hostNetwork have the types the API server itself would have decoded. Each failure is an
`InvalidInput` naming the field; the handler answers 400. The rules are Kubernetes' own
(apimachinery `IsDNS1123Label` / `IsDNS1123Subdomain`, 63 and 253 characters).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from shared.domain.errors import InvalidInput

DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
# generateName is a prefix: the API server appends 5 characters, so it may end in '-' or '.'.
GENERATE_NAME = re.compile(r"[a-z0-9][-a-z0-9.]*")
MAX_LABEL = 63
MAX_SUBDOMAIN = 253
MAX_UID = 128  # UIDs are 36-character UUIDs; anything far longer is not from an API server


def _shown(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:40] + "...") + f" ({len(value)} characters)"


def check_namespace(value: object, where: str) -> None:
    if not isinstance(value, str):
        raise InvalidInput(f"{where} must be a string, got {type(value).__name__}")
    if len(value) > MAX_LABEL or not DNS1123_LABEL.fullmatch(value):
        raise InvalidInput(
            f"{where} {_shown(value)} is not a Kubernetes namespace: a DNS-1123 label of at most {MAX_LABEL} "
            "lower-case letters, digits and '-'"
        )


def _check_name(metadata: Mapping[str, Any]) -> None:
    name, generate = metadata.get("name"), metadata.get("generateName")
    if name not in (None, "") and (
        not isinstance(name, str) or len(name) > MAX_SUBDOMAIN or not DNS1123_SUBDOMAIN.fullmatch(name)
    ):
        shown = _shown(name) if isinstance(name, str) else type(name).__name__
        raise InvalidInput(
            f"request.object.metadata.name {shown} is not a Pod name: a DNS-1123 subdomain of at most "
            f"{MAX_SUBDOMAIN} characters"
        )
    if generate not in (None, "") and (
        not isinstance(generate, str) or len(generate) > MAX_SUBDOMAIN or not GENERATE_NAME.fullmatch(generate)
    ):
        shown = _shown(generate) if isinstance(generate, str) else type(generate).__name__
        raise InvalidInput(
            f"request.object.metadata.generateName {shown} is not a name prefix: lower-case letters, "
            f"digits, '-' and '.', at most {MAX_SUBDOMAIN} characters"
        )


def _check_string_map(value: object, where: str) -> None:
    if value is None:
        return
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{where} must be an object of strings, got {type(value).__name__}")
    bad = next((k for k, v in value.items() if not isinstance(v, str)), None)
    if bad is not None:
        raise InvalidInput(f"{where}[{str(bad)[:63]!r}] must be a string, got {type(value[bad]).__name__}")


def _check_spec(spec: object) -> None:
    if spec is None:
        raise InvalidInput("request.object.spec is missing: a Pod always has a spec")
    if not isinstance(spec, Mapping):
        raise InvalidInput(f"request.object.spec must be an object, got {type(spec).__name__}")
    gates = spec.get("readinessGates")
    if gates is not None:
        if not isinstance(gates, list):
            raise InvalidInput(f"request.object.spec.readinessGates must be a list, got {type(gates).__name__}")
        for index, gate in enumerate(gates):
            if not isinstance(gate, Mapping) or not isinstance(gate.get("conditionType"), str):
                raise InvalidInput(
                    f"request.object.spec.readinessGates[{index}] must be an object with a string conditionType"
                )
    host_network = spec.get("hostNetwork")
    if host_network is not None and not isinstance(host_network, bool):
        raise InvalidInput(f"request.object.spec.hostNetwork must be a boolean, got {type(host_network).__name__}")


def check_review_request(uid: str, namespace: object, pod: Mapping[str, Any] | None) -> None:
    """Raise `InvalidInput` naming the first field of the review whose shape the API server would refuse."""
    if len(uid) > MAX_UID:
        raise InvalidInput(f"request.uid is {len(uid)} characters; an API server sends a UUID (at most {MAX_UID})")
    if namespace is not None:
        check_namespace(namespace, "request.namespace")
    if pod is None:
        return
    metadata = pod.get("metadata")
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, Mapping):
        raise InvalidInput(f"request.object.metadata must be an object, got {type(metadata).__name__}")
    if metadata.get("namespace") is not None:
        check_namespace(metadata["namespace"], "request.object.metadata.namespace")
    _check_name(metadata)
    _check_string_map(metadata.get("labels"), "request.object.metadata.labels")
    _check_string_map(metadata.get("annotations"), "request.object.metadata.annotations")
    _check_spec(pod.get("spec"))
