"""The items of a CLB's work queue: what the bind and unbind steps ask that CLB's writer to do.

Queued by `shared/steps/writer.py` on the CLB's pending set, taken in batches by whichever invocation
holds the CLB's lease (`shared/leases.py`) and carried out by `shared/steps/clb_batch.py`. An item names
what to look at, never what to do: the batch re-reads live state (rule 1). Stored as canonical JSON, so
the pending set deduplicates equal items and a member written by an incompatible version is reported
and skipped, never misread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class ClbWork(BaseModel):
    """One item: register the eligible Pods of a Service (`bind`; with `pod`, only that Pod of it) or
    drain/deregister a Pod (`unbind`).

    A Pod event asks for its own Pod only, so a batch costs what changed, not the Service's size; a
    Service-wide bind (the Service changed, a reconcile) also removes the extra targets of its listeners.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["bind", "unbind"]
    service: str | None = None
    pod: str | None = Field(default=None, description="bind only this Pod (namespace/name) of the Service")
    pod_uid: str | None = None

    @model_validator(mode="after")
    def _names_its_object(self) -> ClbWork:
        if self.kind == "bind" and not self.service:
            raise ValueError("a bind work item names its Service (namespace/name)")
        if self.kind == "unbind" and not self.pod_uid:
            raise ValueError("an unbind work item names its Pod UID")
        if self.pod is not None and self.kind != "bind":
            raise ValueError("only a bind work item names a Pod (namespace/name)")
        return self

    @classmethod
    def bind(cls, service: str, pod: str | None = None) -> ClbWork:
        return cls(kind="bind", service=service, pod=pod)

    @classmethod
    def unbind(cls, pod_uid: str) -> ClbWork:
        return cls(kind="unbind", pod_uid=pod_uid)

    def member(self) -> str:
        """The canonical JSON stored in the pending set (equal items are equal members)."""
        return self.model_dump_json(exclude_none=True)

    @classmethod
    def decode(cls, member: str) -> ClbWork | None:
        try:
            return cls.model_validate_json(member)
        except ValidationError:
            return None


@dataclass(frozen=True)
class WorkSplit:
    """A batch's items by what they ask: Services to bind (whole or some of their Pods), Pods to unbind."""

    services: list[str]  # every Service to bind, sorted
    pods: dict[str, list[str]]  # Service -> the only Pods (namespace/name) to bind, for Services not bound whole
    unbind_uids: list[str]


def split_work(items: list[ClbWork]) -> WorkSplit:
    """Sorted and without duplicates; one whole-Service item for a Service makes its Pod items moot."""
    binds = [i for i in items if i.kind == "bind" and i.service]
    whole = {i.service for i in binds if i.pod is None}
    pods: dict[str, set[str]] = {}
    for item in binds:
        if item.service not in whole and item.service and item.pod:
            pods.setdefault(item.service, set()).add(item.pod)
    return WorkSplit(
        services=sorted({i.service for i in binds if i.service}),
        pods={service: sorted(keys) for service, keys in sorted(pods.items())},
        unbind_uids=sorted({i.pod_uid for i in items if i.kind == "unbind" and i.pod_uid}),
    )
