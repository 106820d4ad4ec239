"""Send planned StepRequests to their functions through the `Invoker` port, each cut to fit SCF's limit.

Called by `shared.router` (after planning a delivery) and by `shared.health` (flips for healthy Pods),
so neither service calls into the other. Requests over the async payload limit are split by
`shared.domain.routing.split_request` first.
"""

from __future__ import annotations

from typing import Any

from shared.deps import Deps
from shared.domain.limits import STEP_REQUEST_MAX_BYTES
from shared.domain.models import StepRequest
from shared.domain.routing import split_request
from shared.logging import get_logger

log = get_logger("clb_direct.dispatch")


def dispatch(deps: Deps, requests: list[StepRequest]) -> list[dict[str, Any]]:
    """Invoke one function per request (each split to fit the async payload limit)."""
    invoker = deps.require_invoker()
    sent: list[dict[str, Any]] = []
    for request in requests:
        for part in split_request(request, max_bytes=STEP_REQUEST_MAX_BYTES):
            request_id = invoker.invoke_async(part.step, part.model_dump(mode="json"))
            sent.append({"step": part.step, "lbId": part.lb_id, "pods": len(part.pods), "requestId": request_id})
            log.info(
                "step.dispatched", step=part.step, lb_id=part.lb_id, pods=len(part.pods), services=len(part.services)
            )
    return sent
