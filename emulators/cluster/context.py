"""Per-request facts that outlive the HTTP layer: who called, with which URI, under which audit ID.

The HTTP server sets :data:`current_request` around each API call; the object store reads it when it
records a write for the audit backend. In-process callers (the simulator's controllers) leave it unset,
and the store then synthesises the request URI the real client would have used. :class:`AuditedCall`
is what the store remembers of a write while it runs, and turns into the :class:`WriteRecord` it reports.
"""

from __future__ import annotations

import contextvars
import copy
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from emulators.cluster.resources import ResourceType
from emulators.cluster.updates import request_uri


@dataclass(frozen=True)
class RequestInfo:
    request_uri: str
    user_agent: str = ""
    source_ips: tuple[str, ...] = ()
    audit_id: str = field(default_factory=lambda: str(uuid.uuid4()))


current_request: contextvars.ContextVar[RequestInfo | None] = contextvars.ContextVar(
    "cluster_simulator_request", default=None
)


@dataclass
class WriteRecord:
    """One completed (or failed) write, handed by the object store to the audit backend."""

    verb: str  # create, update, patch, delete
    resource: str
    subresource: str | None
    namespace: str | None
    name: str  # "" for a create that used generateName, as the real audit log has it
    api_group: str
    api_version: str
    actor: str
    request_object: Any
    response_object: Any
    response_status: dict[str, Any]
    received: datetime
    completed: datetime
    request: RequestInfo


@dataclass(frozen=True)
class AuditedCall:
    """What an audited write was asked to do (the audit event's verb, objectRef, user, requestObject)."""

    verb: str
    rtype: ResourceType
    ns: str
    name: str
    subresource: str | None
    actor: str
    request_object: Any

    def record(
        self, response_object: Any, status: dict[str, Any], received: datetime, completed: datetime
    ) -> WriteRecord:
        """The write's record, under the current HTTP request or, in-process, the URI a client would use."""
        rtype = self.rtype
        info = current_request.get() or RequestInfo(
            request_uri=request_uri(rtype, self.ns, self.name, self.subresource, self.verb)
        )
        return WriteRecord(
            verb=self.verb,
            resource=rtype.plural,
            subresource=self.subresource,
            namespace=self.ns or None,
            name=self.name,
            api_group=rtype.group,
            api_version=rtype.version,
            actor=self.actor,
            request_object=copy.deepcopy(self.request_object),
            response_object=copy.deepcopy(response_object),
            response_status=status,
            received=received,
            completed=completed,
            request=info,
        )
