"""Admission planning: AdmissionReview v1 for a Pod CREATE → allowed response with a JSONPatch adding
the readiness gate.

Pure: the admission step parses the review here, looks up the selector index (or the live Services),
and calls `admit`. The gate is added once: the list is created when absent (`add …/-` on a missing array
would fail the whole patch) and nothing is added when it is already there (reinvocation is idempotent).
hostNetwork Pods never get the gate; the response carries a warning instead. A gated Pod also gets the
termination protection's preStop hooks (`shared.domain.termination.plan_protection`) unless a selecting
Service turns it off; what the user must know about it (their own preStop kept, a grace period too
short for the drain) comes back as `notices` and as warnings in the response.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.domain.admission_input import check_review_request
from shared.domain.backends import selects
from shared.domain.errors import InvalidInput
from shared.domain.json_input import check_json_value, parse_json
from shared.domain.models import GATE_CONDITION_TYPE, SelectorEntry
from shared.domain.termination import ProtectionOptions, combine_modes, plan_protection, service_protection


class AdmissionRequest(BaseModel):
    # The API server adds fields across versions (requestKind, options, ...): tolerate unknown ones.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    uid: str = Field(min_length=1)
    operation: str = "CREATE"
    namespace: str | None = None
    kind: dict[str, str] = Field(default_factory=dict)
    object: dict[str, Any] | None = None
    dry_run: bool = Field(default=False, alias="dryRun")


class AdmissionReview(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    api_version: Literal["admission.k8s.io/v1"] = Field(alias="apiVersion")
    kind: Literal["AdmissionReview"]
    request: AdmissionRequest


def parse_review(body: str | bytes | Mapping[str, Any] | None, *, is_base64: bool = False) -> AdmissionReview:
    """Decode and validate a review; `InvalidInput` names what is wrong (the caller answers HTTP 400)."""
    if body is None or body in ("", b""):
        raise InvalidInput("empty request body: expected an AdmissionReview v1 JSON object")
    data: Any = body
    if isinstance(body, (str, bytes)):
        raw = body.encode() if isinstance(body, str) else body
        if is_base64:
            try:
                raw = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise InvalidInput("request body is flagged base64 but does not decode as base64") from exc
        data = parse_json(raw, what="request body")
    else:
        check_json_value(data, what="request body")
    if not isinstance(data, Mapping):
        raise InvalidInput("request body must be a JSON object (an AdmissionReview)")
    try:
        review = AdmissionReview.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in exc.errors())
        raise InvalidInput(
            f"not a valid AdmissionReview (apiVersion admission.k8s.io/v1, kind AdmissionReview, request.uid): "
            f"{problems}"
        ) from exc
    request = review.request
    if request.kind.get("kind", "Pod") == "Pod":
        check_review_request(request.uid, request.namespace, request.object)
    return review


def gate_patch(pod: Mapping[str, Any]) -> list[dict[str, Any]]:
    """JSONPatch ops adding the gate to a Pod object; [] when the gate is already present."""
    spec = pod.get("spec") or {}
    gates = spec.get("readinessGates")
    entry = {"conditionType": GATE_CONDITION_TYPE}
    if not gates:
        # Absent or empty: create the whole list (an `add …/-` on a missing array fails the patch).
        return [{"op": "add", "path": "/spec/readinessGates", "value": [entry]}]
    if any(isinstance(g, Mapping) and g.get("conditionType") == GATE_CONDITION_TYPE for g in gates):
        return []
    return [{"op": "add", "path": "/spec/readinessGates/-", "value": entry}]


@dataclass
class AdmissionDecision:
    uid: str
    patch: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    services: list[str] = field(default_factory=list)
    protected: list[str] = field(default_factory=list)  # containers given the drain-wait preStop
    notices: list[tuple[str, str]] = field(default_factory=list)  # (reason, message) for Warning Events

    def response(self) -> dict[str, Any]:
        """The AdmissionReview the API server expects back (same apiVersion, uid echoed)."""
        body: dict[str, Any] = {"uid": self.uid, "allowed": True}
        if self.patch:
            body["patchType"] = "JSONPatch"
            body["patch"] = base64.b64encode(json.dumps(self.patch, separators=(",", ":")).encode()).decode()
        if self.warnings:
            body["warnings"] = list(self.warnings)
        return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": body}


def pod_namespace(review: AdmissionReview) -> str:
    metadata = (review.request.object or {}).get("metadata") or {}
    return review.request.namespace or str(metadata.get("namespace") or "default")


def is_pod_create(review: AdmissionReview) -> bool:
    request = review.request
    return request.operation == "CREATE" and request.kind.get("kind", "Pod") == "Pod" and request.object is not None


@dataclass(frozen=True)
class Protection:
    """What admission needs to add the termination protection: options, the token key, a fresh Pod id."""

    options: ProtectionOptions
    key: bytes
    prestop_id: str


def admit(
    review: AdmissionReview, selectors: Sequence[SelectorEntry], protection: Protection | None = None
) -> AdmissionDecision:
    """Decide the response for one review given the namespace's direct-access Service selectors."""
    decision = AdmissionDecision(uid=review.request.uid)
    if not is_pod_create(review):
        return decision
    pod = review.request.object or {}
    labels = (pod.get("metadata") or {}).get("labels") or {}
    matching = sorted(
        (entry for entry in selectors if selects(entry.selector, labels)), key=lambda e: (e.namespace, e.service)
    )
    matched = [f"{entry.namespace}/{entry.service}" for entry in matching]
    if not matched:
        return decision
    decision.services = matched
    if (pod.get("spec") or {}).get("hostNetwork"):
        decision.warnings.append(
            f"clb-direct: Service(s) {', '.join(matched)} use direct access, which does not support hostNetwork "
            "Pods; this Pod gets no readiness gate and will not be bound to the CLB"
        )
        return decision
    decision.patch = gate_patch(pod)
    if protection is not None:
        _protect(decision, pod, pod_namespace(review), matching, protection)
    return decision


def _protect(
    decision: AdmissionDecision,
    pod: Mapping[str, Any],
    namespace: str,
    matching: Sequence[SelectorEntry],
    protection: Protection,
) -> None:
    requested = []
    for entry in matching:
        try:
            requested.append(service_protection(entry.annotations))
        except ValueError as exc:
            decision.warnings.append(f"clb-direct: {entry.namespace}/{entry.service}: {exc}; using the default")
    mode = combine_modes(protection.options.mode, requested)
    options = ProtectionOptions(
        mode=mode,
        endpoint=protection.options.endpoint,
        drain_budget_s=protection.options.drain_budget_s,
        sleep_s=protection.options.sleep_s,
    )
    plan = plan_protection(pod, namespace, options, prestop_id=protection.prestop_id, key=protection.key)
    decision.patch.extend(plan.patch)
    decision.protected = plan.protected
    decision.notices = plan.notices
    decision.warnings.extend(f"clb-direct: {message}" for _reason, message in plan.notices)
