"""Conversion between core/v1 Events (the stored form) and events.k8s.io/v1 Events.

The HTTP server calls it for every ``/apis/events.k8s.io/v1`` request: the real apiserver keeps both
APIs on one storage, so an Event written through one API is readable through the other. Field mapping
follows ``pkg/apis/events/v1`` conversion: ``regarding``↔``involvedObject``, ``note``↔``message``,
``reportingController``↔``reportingComponent``, ``deprecated*``↔the legacy fields.
"""

from __future__ import annotations

import copy
from typing import Any

from emulators.cluster.errors import invalid

_RENAMED = {
    "regarding": "involvedObject",
    "note": "message",
    "reportingController": "reportingComponent",
    "deprecatedSource": "source",
    "deprecatedFirstTimestamp": "firstTimestamp",
    "deprecatedLastTimestamp": "lastTimestamp",
    "deprecatedCount": "count",
}
_SAME = ("metadata", "eventTime", "reportingInstance", "action", "reason", "type", "related", "series")


def to_core(event: dict[str, Any]) -> dict[str, Any]:
    core: dict[str, Any] = {"kind": "Event", "apiVersion": "v1"}
    for key in _SAME:
        if key in event:
            core[key] = copy.deepcopy(event[key])
    for v1_key, core_key in _RENAMED.items():
        if v1_key in event:
            core[core_key] = copy.deepcopy(event[v1_key])
    core.setdefault("involvedObject", {})
    return core


def from_core(core: dict[str, Any]) -> dict[str, Any]:
    event: dict[str, Any] = {"kind": "Event", "apiVersion": "events.k8s.io/v1"}
    for key in _SAME:
        if key in core:
            event[key] = copy.deepcopy(core[key])
    for v1_key, core_key in _RENAMED.items():
        if core.get(core_key) not in (None, {}, ""):
            event[v1_key] = copy.deepcopy(core[core_key])
    # events.k8s.io/v1 requires eventTime; legacy events only have first/lastTimestamp.
    if not event.get("eventTime"):
        event["eventTime"] = core.get("firstTimestamp") or core["metadata"].get("creationTimestamp")
    return event


def validate_new(event: dict[str, Any]) -> None:
    """The events.k8s.io/v1 create validation (``ValidateEventCreate``) for the fields it requires."""
    name = (event.get("metadata") or {}).get("name") or ""
    for field in ("eventTime", "reportingController", "reportingInstance", "action", "reason", "type"):
        if not event.get(field):
            raise invalid(
                "Event", "events.k8s.io", name, field, cause_reason="FieldValueRequired", detail="Required value"
            )
    if len(event.get("note") or "") > 1024:
        raise invalid(
            "Event",
            "events.k8s.io",
            name,
            "note",
            cause_reason="FieldValueTooLong",
            detail="Too long: may not be more than 1024 bytes",
        )
