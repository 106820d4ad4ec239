"""SCF entry point of reconcile: timer anti-entropy passes, console replays, router `reconcile` requests.

Two timer triggers: the reconcile pass (which also drains the due schedule) and `schedule` (argument
"schedule", every 10 s), which only drains the schedule of delayed work (`shared.schedule`).

Console test events: `{"replay": {"event_id": "..."}}`, `{"replay": {"service": "ns/name"}}` or
`{"replay": {"pod": "ns/name"}}`. A `StepRequest(step="reconcile")` comes from the router (cluster
config or TkeServiceConfig changed, or a Pod event without a body). Dependencies are built once per
cold start; the work is in `shared.reconcile`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from shared.deps import Deps
from shared.domain.errors import ClbDirectError, InvalidInput
from shared.domain.models import ObjectKey, StepRequest
from shared.events.timer import TimerEvent
from shared.reconcile import handle_step_request, reconcile_all, reconcile_service, replay_event, replay_pod
from shared.schedule import drain_schedule
from shared.shell import FunctionShell, async_error

shell = FunctionShell("reconcile")
# The argument of the `schedule` timer trigger (serverless.yml): drain the due schedule only.
SCHEDULE_TIMER_MESSAGE = "schedule"


class ReplayTarget(BaseModel):
    """Exactly one of event_id / service / pod."""

    model_config = ConfigDict(extra="forbid")

    event_id: str | None = None
    service: str | None = None
    pod: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ReplayTarget:
        if sum(v is not None for v in (self.event_id, self.service, self.pod)) != 1:
            raise ValueError('give exactly one of "event_id", "service" ("ns/name") or "pod" ("ns/name")')
        return self


def replay(deps: Deps, raw: object) -> dict[str, Any]:
    try:
        target = ReplayTarget.model_validate(raw)
        if target.event_id is not None:
            return replay_event(deps, target.event_id)
        if target.service is not None:
            return reconcile_service(deps, ObjectKey.parse(target.service), force=True, reason="replay")
        return replay_pod(deps, ObjectKey.parse(str(target.pod)))
    except (ValidationError, ValueError) as exc:
        raise InvalidInput(f"bad replay request: {exc}") from exc


def main_handler(event: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    shell.begin(context)
    request_id = str(context.get("request_id") or "local")
    try:
        if not isinstance(event, dict):
            raise InvalidInput(f"reconcile expects a JSON object event, got {type(event).__name__}")
        deps = shell.deps()
        if TimerEvent.looks_like(event):
            if TimerEvent.model_validate(event).message == SCHEDULE_TIMER_MESSAGE:
                return drain_schedule(deps)
            return reconcile_all(deps, correlation_id=request_id)
        if "replay" in event:
            return replay(deps, event["replay"])
        if event.get("step") == "reconcile":
            return handle_step_request(deps, StepRequest.model_validate(event))
        raise InvalidInput('reconcile accepts a timer event, {"replay": {...}} or a reconcile StepRequest')
    except (ClbDirectError, ValidationError) as exc:
        return async_error(shell.name, exc)
