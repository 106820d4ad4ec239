"""Pure rules of the delayed-work schedule: how a delayed step request becomes schedule items, and how
the items a timer takes become step requests again.

Called by `shared/schedule.py` (the service over the store's due-set). A delayed request is split into
one item per object it names (a Pod UID, a Pod, a Service), keyed by step, CLB and object, so that a
duplicate event re-scheduling the same re-check moves one item instead of adding a second, and items
taken together are merged back into one request per (step, CLB): Pods drained together are re-checked
together, with one deregistration call for the wave (rule 5).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pydantic import BaseModel, ConfigDict, ValidationError

from shared.domain.models import DueItem, ScheduleClaim, StepRequest

# One dispatched request carries at most this many items, so it never needs splitting to fit SCF's
# async payload limit (a split would hand one claim to two invocations).
MAX_ITEMS_PER_REQUEST = 100


class ScheduledStep(BaseModel):
    """The typed payload of a schedule item: the step request to run when it is due."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str = "step"
    request: StepRequest


def schedule_items(request: StepRequest) -> list[tuple[str, StepRequest]]:
    """(key, narrowed request) per object the delayed request names; `not_before` is dropped (due = now)."""
    base = request.model_copy(update={"not_before": None, "scheduled": [], "services": [], "pods": [], "pod_uids": []})
    prefix = f"{request.step}:{request.lb_id or '-'}"
    items: list[tuple[str, StepRequest]] = []
    for uid in request.pod_uids:
        items.append((f"{prefix}:uid:{uid}", base.model_copy(update={"pod_uids": [uid]})))
    for pod in request.pods:
        items.append((f"{prefix}:pod:{pod}", base.model_copy(update={"pods": [pod]})))
    for service in request.services:
        items.append((f"{prefix}:svc:{service}", base.model_copy(update={"services": [service]})))
    if not items:
        items.append((f"{prefix}:all", base))
    return items


def encode(request: StepRequest) -> str:
    return ScheduledStep(request=request).model_dump_json(exclude_defaults=True)


def decode(payload: str) -> StepRequest | None:
    """The request of an item, or None when the payload is not one (written by an incompatible version)."""
    try:
        return ScheduledStep.model_validate_json(payload).request
    except ValidationError:
        return None


def merge_due(items: Iterable[tuple[DueItem, StepRequest]]) -> list[StepRequest]:
    """One request per (step, CLB) and chunk of items, carrying each item's claim for completion."""
    groups: dict[tuple[str, str | None], list[tuple[DueItem, StepRequest]]] = {}
    for item, request in items:
        groups.setdefault((request.step, request.lb_id), []).append((item, request))
    merged: list[StepRequest] = []
    for (_step, _lb_id), members in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        for start in range(0, len(members), MAX_ITEMS_PER_REQUEST):
            merged.append(_merge(members[start : start + MAX_ITEMS_PER_REQUEST]))
    return merged


def _merge(members: Sequence[tuple[DueItem, StepRequest]]) -> StepRequest:
    first = members[0][1]
    reasons = sorted({r.reason for _, r in members if r.reason})
    return first.model_copy(
        update={
            "services": _unique(s for _, r in members for s in r.services),
            "pods": _unique(p for _, r in members for p in r.pods),
            "pod_uids": list(dict.fromkeys(u for _, r in members for u in r.pod_uids)),
            "reason": "; ".join(reasons) or "scheduled",
            "correlation_id": first.correlation_id,
            "scheduled": [ScheduleClaim(key=item.key, claim=item.claim) for item, _ in members],
        }
    )


def _unique(items: Iterable[object]) -> list[object]:
    seen: dict[str, object] = {}
    for item in items:
        seen.setdefault(str(item), item)
    return list(seen.values())
