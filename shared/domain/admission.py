"""Admission as data: AdmissionReview v1 for a Pod CREATE → a typed `AdmissionPlan` → the allowed response.

Pure: `shared/steps/admission.py` parses the review here (`parse_review`), observes an
`AdmissionSnapshot` (the namespace's direct-access selectors from the selector index, or from the live
Services when the index is cold; the protection options and token key), and calls `plan_admission`, whose
plan its applier carries out (the index refresh, the notice Events) before the plan's `response()` goes
back to the API server. Every action carries its reason. The gate is added once: the list is created when
absent (`add …/-` on a missing array would fail the whole patch) and nothing is added when it is already
there (reinvocation is idempotent). hostNetwork Pods never get the gate (`RefuseGate`); the response
carries a warning instead. A gated Pod also gets the termination protection's preStop hooks
(`shared.domain.termination.plan_protection`) unless a selecting Service turns it off; what the user must
know about it (their own preStop kept, a grace period too short for the drain) comes back as `Notice`s:
warnings in the response and Warning Events on the first selecting Service. Admission never refuses a Pod.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.domain.admission_input import check_review_request
from shared.domain.backends import selects
from shared.domain.errors import InvalidInput
from shared.domain.json_input import check_json_value, parse_json
from shared.domain.models import GATE_CONDITION_TYPE, ObjectRef, SelectorEntry
from shared.domain.termination import (
    PatchPod,
    ProtectionOptions,
    combine_modes,
    plan_protection,
    service_protection,
)


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
    """JSONPatch ops adding the gate to a Pod object; [] when the gate is already present (`gate_ops` typed)."""
    return [op.json_op() for op in gate_ops(pod, reason="")]


def gate_ops(pod: Mapping[str, Any], *, reason: str) -> list[PatchPod]:
    spec = pod.get("spec") or {}
    gates = spec.get("readinessGates")
    entry = {"conditionType": GATE_CONDITION_TYPE}
    if not gates:
        # Absent or empty: create the whole list (an `add …/-` on a missing array fails the patch).
        return [PatchPod(adds="readiness_gate", path="/spec/readinessGates", value=[entry], reason=reason)]
    if any(isinstance(g, Mapping) and g.get("conditionType") == GATE_CONDITION_TYPE for g in gates):
        return []
    return [PatchPod(adds="readiness_gate", path="/spec/readinessGates/-", value=entry, reason=reason)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Warn(_Frozen):
    """A warning in the response only (the API server shows it to whoever created the Pod)."""

    kind: Literal["warn"] = "warn"
    message: str
    reason: str


class Notice(_Frozen):
    """What the user must know about the protection: a response warning, and a Warning Event on the first
    selecting Service once per workload and reason an hour (`regarding` None: a dry-run review, no Event)."""

    kind: Literal["notice"] = "notice"
    notice: str = Field(description="the Event reason: PreStopHookKept, GracePeriodTooShort")
    message: str
    workload: str
    regarding: ObjectRef | None
    reason: str = "the Pod has no name yet: the first selecting Service carries the Event"


class RefuseGate(_Frozen):
    """The Pod is selected but gets no gate (and no CLB binding); it is admitted with this warning."""

    kind: Literal["refuse_gate"] = "refuse_gate"
    message: str
    reason: str


class RefreshSelectorIndex(_Frozen):
    """Write the namespace's live direct-access selectors into the cold index, drop the stale ones, mark it warm."""

    kind: Literal["refresh_selector_index"] = "refresh_selector_index"
    namespace: str
    entries: list[SelectorEntry]
    stale: list[str]
    reason: str


AdmissionAction = Annotated[PatchPod | Warn | Notice | RefuseGate | RefreshSelectorIndex, Field(discriminator="kind")]


class AdmissionPlan(BaseModel):
    """Everything one review does: the Pod patch, the warnings, the Events and the index refresh, in order."""

    model_config = ConfigDict(extra="forbid")

    uid: str
    services: list[str] = Field(default_factory=list, description="the selecting direct-access Services")
    protected: list[str] = Field(default_factory=list, description="containers with the drain-wait preStop")
    actions: list[AdmissionAction] = Field(default_factory=list)

    @property
    def patch(self) -> list[dict[str, Any]]:
        return [action.json_op() for action in self.actions if isinstance(action, PatchPod)]

    @property
    def warnings(self) -> list[str]:
        found = []
        for action in self.actions:
            if isinstance(action, (Warn, RefuseGate)):
                found.append(action.message)
            elif isinstance(action, Notice):
                found.append(f"clb-direct: {action.message}")
        return found

    @property
    def notices(self) -> list[Notice]:
        return [action for action in self.actions if isinstance(action, Notice)]

    def response(self) -> dict[str, Any]:
        """The AdmissionReview the API server expects back (same apiVersion, uid echoed)."""
        body: dict[str, Any] = {"uid": self.uid, "allowed": True}
        patch, warnings = self.patch, self.warnings
        if patch:
            body["patchType"] = "JSONPatch"
            body["patch"] = base64.b64encode(json.dumps(patch, separators=(",", ":")).encode()).decode()
        if warnings:
            body["warnings"] = warnings
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


class AdmissionSnapshot(BaseModel):
    """What one review observed: the review, the selectors it is matched against, and the protection."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    review: AdmissionReview
    selectors: list[SelectorEntry] = Field(default_factory=list, description="the namespace's direct-access ones")
    indexed: list[str] | None = Field(
        default=None, description="the Services the index held, when `selectors` were read live (a cold index)"
    )
    protection: Protection | None = Field(default=None, exclude=True, repr=False)


def plan_admission(snap: AdmissionSnapshot) -> AdmissionPlan:
    """The review's answer (`admit`), after refreshing a cold selector index (not for a dry-run review)."""
    review = snap.review
    plan = admit(review, snap.selectors, snap.protection)
    if snap.indexed is not None and not review.request.dry_run:
        namespace = pod_namespace(review)
        live = {entry.service for entry in snap.selectors}
        why = f"the selector index of namespace {namespace} was cold: the live Services it was read from are kept"
        refresh = RefreshSelectorIndex(
            namespace=namespace, entries=snap.selectors, stale=sorted(set(snap.indexed) - live), reason=why
        )
        plan.actions.insert(0, refresh)
    return plan


def admit(
    review: AdmissionReview, selectors: Sequence[SelectorEntry], protection: Protection | None = None
) -> AdmissionPlan:
    """Decide the response for one review given the namespace's direct-access Service selectors."""
    plan = AdmissionPlan(uid=review.request.uid)
    if not is_pod_create(review):
        return plan
    pod = review.request.object or {}
    labels = (pod.get("metadata") or {}).get("labels") or {}
    matching = sorted(
        (entry for entry in selectors if selects(entry.selector, labels)), key=lambda e: (e.namespace, e.service)
    )
    matched = [f"{entry.namespace}/{entry.service}" for entry in matching]
    if not matched:
        return plan
    plan.services = matched
    if (pod.get("spec") or {}).get("hostNetwork"):
        message = (
            f"clb-direct: Service(s) {', '.join(matched)} use direct access, which does not support hostNetwork "
            "Pods; this Pod gets no readiness gate and will not be bound to the CLB"
        )
        plan.actions.append(RefuseGate(message=message, reason="a hostNetwork Pod's IP is its node's: not a target"))
        return plan
    why = f"selected by {', '.join(matched)}: Ready only once the CLB sends it traffic"
    plan.actions.extend(gate_ops(pod, reason=why))
    if protection is not None:
        _protect(plan, review, matching, protection)
    return plan


def _protect(
    plan: AdmissionPlan, review: AdmissionReview, matching: Sequence[SelectorEntry], protection: Protection
) -> None:
    requested = []
    for entry in matching:
        try:
            requested.append(service_protection(entry.annotations))
        except ValueError as exc:
            message = f"clb-direct: {entry.namespace}/{entry.service}: {exc}; using the default"
            plan.actions.append(Warn(message=message, reason="the Service's termination-protection annotation"))
    mode = combine_modes(protection.options.mode, requested)
    options = ProtectionOptions(
        mode=mode,
        endpoint=protection.options.endpoint,
        drain_budget_s=protection.options.drain_budget_s,
        sleep_s=protection.options.sleep_s,
    )
    pod, namespace = review.request.object or {}, pod_namespace(review)
    protecting = plan_protection(pod, namespace, options, prestop_id=protection.prestop_id, key=protection.key)
    plan.actions.extend(protecting.ops)
    plan.protected = protecting.protected
    first = matching[0]
    regarding = (
        None if review.request.dry_run else ObjectRef(kind="Service", namespace=first.namespace, name=first.service)
    )
    workload = workload_of(review)
    for reason, message in protecting.notices:
        plan.actions.append(Notice(notice=reason, message=message, workload=workload, regarding=regarding))


def workload_of(review: AdmissionReview) -> str:
    """How a notice names the Pod, which has no name yet: its controller, else its (generate) name."""
    meta = (review.request.object or {}).get("metadata") or {}
    owner = next((o for o in meta.get("ownerReferences") or [] if o.get("controller")), None)
    if owner:
        return f"{owner.get('kind')} {owner.get('name')}"
    return f"Pods named {meta.get('name') or str(meta.get('generateName') or '') + '*'}"
