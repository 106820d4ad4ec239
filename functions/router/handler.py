"""SCF entry point of the router: relay batches (API gateway), raw audit EventLists, CLS audit logs.

Parses the trigger's event, builds the dependencies once per cold start (store + invoker; the router
needs neither the CLB nor the Kubernetes API) and calls `shared.router`. Retryable failures are raised
so SCF retries async triggers; over HTTP they become 503 so the relay retries. Malformed input is
answered, not retried.
"""

from __future__ import annotations

from typing import Any

from shared.domain.errors import InvalidInput, PermanentError, RetryableError
from shared.events.apigw import ApiGatewayEvent, ApiGatewayResponse
from shared.events.audit import AuditEventList
from shared.events.base import validate_wire
from shared.events.cls import ClsEvent
from shared.router import route_cls, route_event_list, route_signed
from shared.steps.handler_support import FunctionShell

shell = FunctionShell("router", with_clb=False, with_cluster=False)


def main_handler(event: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    deps = shell.deps()
    shell.begin(context)
    request_id = str(context.get("request_id") or "local")
    if ApiGatewayEvent.looks_like(event):
        try:
            return route_signed(deps, ApiGatewayEvent.model_validate(event)).to_wire()
        except RetryableError as exc:
            return ApiGatewayResponse.of(503, exc.to_dict()).to_wire()
        except PermanentError as exc:
            return ApiGatewayResponse.of(400, exc.to_dict()).to_wire()
    try:
        if ClsEvent.looks_like(event):
            return route_cls(
                deps, validate_wire(ClsEvent, event, what="CLS event"), correlation_id=request_id
            ).to_dict()
        if AuditEventList.looks_like(event):
            events = validate_wire(AuditEventList, event, what="EventList")
            return route_event_list(deps, events, correlation_id=request_id).to_dict()
        raise InvalidInput(
            "router accepts an API gateway event (relay batch), an audit EventList or a CLS trigger event; "
            f"got keys {sorted(event)[:8]}"
        )
    except RetryableError:
        raise
    except PermanentError as exc:
        return {"ok": False, **exc.to_dict()}
