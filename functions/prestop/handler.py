"""SCF function `prestop`: the endpoint the kubelet calls as a gated Pod's `httpGet` preStop hook.

API gateway `GET /prestop?namespace=<ns>&id=<prestop id>` with the per-Pod token header; the answer
comes when the Pod is drained on the CLB or its grace period is nearly over (`shared.steps.prestop`).
Bad input gets 400 naming the field, a wrong token 401 (nothing else), too many held requests 429.
Whatever happens, it answers in time for the kubelet to send SIGTERM within the grace period. Give the
function a timeout of at least `prestop_max_hold_s` and bound its concurrency on SCF.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from shared.domain.errors import ClbDirectError, InvalidInput
from shared.domain.termination import PRESTOP_TOKEN_HEADER
from shared.events.apigw import ApiGatewayEvent, ApiGatewayResponse
from shared.shell import FunctionShell, http_error, log
from shared.steps.prestop import PrestopCall, TooManyHolds, Unauthorized, wait_for_drain

shell = FunctionShell("prestop", with_clb=False, with_invoker=True)


def main_handler(event: Any, context: dict[str, Any] | None = None) -> dict[str, Any]:
    shell.begin(context)
    try:
        if not ApiGatewayEvent.looks_like(event):
            raise InvalidInput("prestop expects an API gateway event (GET /prestop?namespace=..&id=..)")
        request = ApiGatewayEvent.model_validate(event)
        call = PrestopCall.parse(request.query_string, request.header(PRESTOP_TOKEN_HEADER))
        result = wait_for_drain(shell.deps(), call)
    except Unauthorized:
        log.warning("prestop.unauthorized")
        return ApiGatewayResponse.of(401, {"error": "Unauthorized"}).to_wire()
    except TooManyHolds as exc:
        log.warning("prestop.too_many_holds", message=exc.message)
        return ApiGatewayResponse.of(429, {"error": "TooManyRequests", "message": exc.message}).to_wire()
    except (ClbDirectError, ValidationError) as exc:
        # 400 naming the field for bad input, 500 for a misconfiguration, 503 for a transient failure: the
        # kubelet goes on to SIGTERM at once whatever the answer (fail-safe).
        return http_error(shell.name, exc)
    return ApiGatewayResponse.of(200, result.as_dict()).to_wire()
