"""Kubernetes audit `Event` / `EventList` (`audit.k8s.io/v1`).

The relay receives EventLists from the API server's webhook backend and forwards the events in its
batches; the router also accepts raw EventLists and CLS records holding one Event each. Only the
fields the router reads are typed; everything else is kept (the API server adds fields over time).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from shared.events.base import ForeignModel


class UserInfo(ForeignModel):
    username: str = ""
    uid: str | None = None
    groups: list[str] = Field(default_factory=list)


class AuditObjectRef(ForeignModel):
    resource: str = ""
    namespace: str = ""
    name: str = ""
    uid: str = ""
    api_group: str = Field(default="", alias="apiGroup")
    api_version: str = Field(default="", alias="apiVersion")
    resource_version: str = Field(default="", alias="resourceVersion")
    subresource: str = ""


class ResponseStatus(ForeignModel):
    code: int = 0
    status: str | None = None
    reason: str | None = None
    message: str | None = None


class AuditEvent(ForeignModel):
    kind: str = "Event"
    api_version: str = Field(default="audit.k8s.io/v1", alias="apiVersion")
    level: str = ""
    audit_id: str = Field(alias="auditID", min_length=1)
    stage: str = Field(min_length=1)
    request_uri: str = Field(default="", alias="requestURI")
    verb: str = Field(min_length=1)
    user: UserInfo = Field(default_factory=UserInfo)
    source_ips: list[str] = Field(default_factory=list, alias="sourceIPs")
    user_agent: str = Field(default="", alias="userAgent")
    object_ref: AuditObjectRef | None = Field(default=None, alias="objectRef")
    response_status: ResponseStatus | None = Field(default=None, alias="responseStatus")
    request_object: Any = Field(default=None, alias="requestObject")
    response_object: Any = Field(default=None, alias="responseObject")
    request_received_timestamp: str = Field(default="", alias="requestReceivedTimestamp")
    stage_timestamp: str = Field(default="", alias="stageTimestamp")
    annotations: dict[str, str] = Field(default_factory=dict)


class AuditEventList(ForeignModel):
    """The webhook body. Items stay raw dicts so one malformed event cannot sink the whole list."""

    kind: str = "EventList"
    api_version: str = Field(default="audit.k8s.io/v1", alias="apiVersion")
    metadata: dict[str, Any] = Field(default_factory=dict)
    items: list[Any] = Field(default_factory=list)

    @classmethod
    def looks_like(cls, event: object) -> bool:
        return isinstance(event, dict) and event.get("kind") == "EventList" and "items" in event
