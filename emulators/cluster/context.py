"""Per-request facts that outlive the HTTP layer: who called, with which URI, under which audit ID.

The HTTP server sets :data:`current_request` around each API call; the object store reads it when it
records a write for the audit backend. In-process callers (the simulator's controllers) leave it unset,
and the store then synthesises the request URI the real client would have used.
"""

from __future__ import annotations

import contextvars
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


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
