"""The items of a CLB's work queue: what the bind and unbind steps ask that CLB's writer to do.

Queued by `shared/steps/writer.py` on the CLB's pending set, taken in batches by whichever invocation
holds the CLB's lease (`shared/leases.py`) and carried out by `shared/steps/clb_batch.py`. An item names
what to look at, never what to do: the batch re-reads live state (rule 1). Stored as canonical JSON, so
the pending set deduplicates equal items and a member written by an incompatible version is reported
and skipped, never misread.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator


class ClbWork(BaseModel):
    """One item: register the eligible Pods of a Service (`bind`) or drain/deregister a Pod (`unbind`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["bind", "unbind"]
    service: str | None = None
    pod_uid: str | None = None

    @model_validator(mode="after")
    def _names_its_object(self) -> ClbWork:
        if self.kind == "bind" and not self.service:
            raise ValueError("a bind work item names its Service (namespace/name)")
        if self.kind == "unbind" and not self.pod_uid:
            raise ValueError("an unbind work item names its Pod UID")
        return self

    @classmethod
    def bind(cls, service: str) -> ClbWork:
        return cls(kind="bind", service=service)

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


def split_work(items: list[ClbWork]) -> tuple[list[str], list[str]]:
    """(Services to bind, Pod UIDs to unbind), each sorted and without duplicates."""
    services = sorted({i.service for i in items if i.kind == "bind" and i.service})
    pod_uids = sorted({i.pod_uid for i in items if i.kind == "unbind" and i.pod_uid})
    return services, pod_uids
