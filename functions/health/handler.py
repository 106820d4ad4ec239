"""SCF entry point of the health function: CLB health notifications, Cloud Monitor alarms, timer polls.

Notifications and alarm callbacks arrive through the API gateway (the emulator's callback URL, the
Cloud Monitor callback URL); the timer trigger drains the due schedule of delayed work
(`shared.schedule`) and starts a DescribeTargetHealth poll of CLBs with gate-pending Pods.
Dependencies (store, CLB, invoker) are built once per cold start; the work is in
`shared.health`.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from shared.deps import Deps
from shared.domain.errors import ClbDirectError, InvalidInput
from shared.domain.json_input import parse_json
from shared.events.apigw import ApiGatewayEvent, ApiGatewayResponse
from shared.events.health import AlarmCallback, TargetHealthChanged
from shared.events.timer import TimerEvent
from shared.health import on_alarm, on_target_health_changed, poll_pending
from shared.health_auth import authenticate_callback
from shared.schedule import drain_schedule
from shared.shell import FunctionShell, async_error, http_error
from shared.signing import SignatureRejected

shell = FunctionShell("health", with_cluster=False)


def _callback(deps: Deps, event: ApiGatewayEvent) -> ApiGatewayResponse:
    body = event.raw_body()
    auth = authenticate_callback(deps.settings, deps.store, deps.clock, event, body)
    payload = parse_json(body, what="health callback body")
    try:
        if TargetHealthChanged.looks_like(payload):
            if auth == "token":
                raise SignatureRejected("a TargetHealthChanged notification must be signed, not token-authenticated")
            return ApiGatewayResponse.of(
                200, on_target_health_changed(deps, TargetHealthChanged.model_validate(payload))
            )
        if AlarmCallback.looks_like(payload):
            ack, _ = on_alarm(deps, AlarmCallback.model_validate(payload))
            return ApiGatewayResponse.of(200, ack.model_dump(by_alias=True))
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidInput(f"health callback field {'.'.join(map(str, first['loc']))!r}: {first['msg']}") from exc
    raise InvalidInput("expected a TargetHealthChanged notification or a Cloud Monitor alarm callback (sessionId)")


def main_handler(event: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    shell.begin(context)
    if ApiGatewayEvent.looks_like(event):
        try:
            deps = shell.deps()
            return _callback(deps, ApiGatewayEvent.model_validate(event)).to_wire()
        except (ClbDirectError, ValidationError) as exc:
            return http_error(shell.name, exc)
    try:
        if TimerEvent.looks_like(event):
            deps = shell.deps()
            scheduled = drain_schedule(deps)
            polled = poll_pending(deps, correlation_id=str(context.get("request_id") or "timer"))
            return {**polled, "schedule": scheduled}
        raise InvalidInput("health accepts an API gateway callback or a timer event")
    except (ClbDirectError, ValidationError) as exc:
        return async_error(shell.name, exc)
