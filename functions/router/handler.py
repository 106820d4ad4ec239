"""SCF entry point of the router: relay batches (API gateway), raw audit EventLists, CLS audit logs.

Parses the trigger's event, builds the dependencies once per cold start (store + invoker; the router
needs neither the CLB nor the Kubernetes API) and calls `shared.router`. Errors go through the shell's
seam: over HTTP a retryable failure is 503 so the relay retries, malformed input 400; on async
triggers a retryable failure is raised so SCF retries, a permanent one (a bad setting too) is answered.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from shared.deps import Deps
from shared.domain.errors import ClbDirectError, InvalidInput
from shared.events.apigw import ApiGatewayEvent
from shared.events.audit import AuditEventList
from shared.events.base import validate_wire
from shared.events.cls import ClsEvent
from shared.router import route_cls, route_event_list, route_signed
from shared.shell import FunctionShell, async_error, http_error

shell = FunctionShell("router", with_clb=False, with_cluster=False)


def main_handler(event: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    shell.begin(context)
    if ApiGatewayEvent.looks_like(event):
        try:
            deps = shell.deps()
            return route_signed(deps, ApiGatewayEvent.model_validate(event)).to_wire()
        except (ClbDirectError, ValidationError) as exc:
            return http_error(shell.name, exc)
    try:
        return _route_async(shell.deps(), event, correlation_id=str(context.get("request_id") or "local"))
    except (ClbDirectError, ValidationError) as exc:
        return async_error(shell.name, exc)


def _route_async(deps: Deps, event: dict[str, Any], *, correlation_id: str) -> dict[str, Any]:
    if ClsEvent.looks_like(event):
        return route_cls(
            deps, validate_wire(ClsEvent, event, what="CLS event"), correlation_id=correlation_id
        ).to_dict()
    if AuditEventList.looks_like(event):
        events = validate_wire(AuditEventList, event, what="EventList")
        return route_event_list(deps, events, correlation_id=correlation_id).to_dict()
    got = f"keys {sorted(map(str, event))[:8]}" if isinstance(event, dict) else type(event).__name__
    raise InvalidInput(
        f"router accepts an API gateway event (relay batch), an audit EventList or a CLS trigger event; got {got}"
    )
