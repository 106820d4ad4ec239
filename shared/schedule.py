"""The schedule for delayed work: a due-set in the store, drained by timers, so no function sleeps.

API (the store role is `Store.schedule_*`; both engines pass one contract suite):

- `schedule_request(store, request, due_at)`: schedule a delayed step request (a drain re-check, an
  extra-target re-check, any `not_before` work). It is stored as one item per object it names, keyed
  `<step>:<lb_id>:<uid|pod|svc>:<object>`, with a typed payload (`shared.domain.schedule.ScheduledStep`);
  scheduling a key again moves it to the new due time.
- `drain_schedule(deps, limit=...)`: take the due items atomically (`Store.schedule_take_due`: each gets
  a fresh claim token and becomes due again after `Settings.schedule_visibility_s` unless completed, so
  two timers never take one item while its claim is live), merge them into one request per (step, CLB)
  and invoke the step asynchronously with the claims in `StepRequest.scheduled`.
- `complete_claims(store, request)`: called by `shared.steps.run_step` when the step succeeded; removes
  each item whose claim is still the current one (a re-scheduled item stays).
- `Store.schedule_cancel(key)`: drop an item.

An invocation that crashes, times out or ends in SCF's dead-letter queue never completes its claims, so
the items are due again after the visibility timeout and the next drain picks them up. Drained by the
`reconcile` function's `schedule` timer trigger (every 10 s, serverless.yml), by every reconcile pass and
by the health poll (every 5 s); `clb-direct serve` runs the health poll timer too.
"""

from __future__ import annotations

import uuid
from typing import Any

from shared.deps import Deps
from shared.domain.models import DueItem, StepRequest
from shared.domain.schedule import decode, encode, merge_due, schedule_items
from shared.logging import get_logger
from shared.ports import ScheduleStore

DRAIN_LIMIT = 500

log = get_logger("clb_direct.schedule")


def schedule_request(store: ScheduleStore, request: StepRequest, due_at: float) -> list[str]:
    """Schedule `request` to run at `due_at` (its own `not_before` is ignored). Returns the item keys."""
    keys: list[str] = []
    for key, item in schedule_items(request):
        store.schedule_put(key, due_at, encode(item))
        keys.append(key)
    log.info("schedule.put", step=request.step, lb_id=request.lb_id or "", due_at=due_at, items=len(keys))
    return keys


def drain_schedule(deps: Deps, *, limit: int = DRAIN_LIMIT) -> dict[str, Any]:
    """Take what is due and invoke the steps that carry it out; returns what was dispatched."""
    now = deps.clock.now()
    claim = uuid.uuid4().hex
    taken = deps.store.schedule_take_due(
        now=now, limit=limit, visibility_s=deps.settings.schedule_visibility_s, claim=claim
    )
    if not taken:
        return {"due": 0, "dispatched": []}
    valid: list[tuple[DueItem, StepRequest]] = []
    for item in taken:
        request = decode(item.payload)
        if request is None:
            # Our own format, unreadable: another version wrote it. Dropping it is safe because the
            # reconcile timer repairs whatever it was for; keeping it would fail on every drain.
            log.error("schedule.bad_payload", key=item.key, payload=item.payload[:200])
            deps.store.schedule_cancel(item.key)
            continue
        valid.append((item, request))
    invoker = deps.require_invoker()
    sent: list[dict[str, Any]] = []
    for request in merge_due(valid):
        request_id = invoker.invoke_async(request.step, request.model_dump(mode="json"))
        sent.append(
            {"step": request.step, "lbId": request.lb_id, "items": len(request.scheduled), "requestId": request_id}
        )
    retried = sum(1 for item, _ in valid if item.attempts > 1)
    log.info("schedule.drained", due=len(taken), dispatched=len(sent), retried=retried)
    return {"due": len(taken), "dispatched": sent}


def complete_claims(store: ScheduleStore, request: StepRequest) -> int:
    """Complete the schedule items a successful step carried out; returns how many were still current."""
    return sum(1 for c in request.scheduled if store.schedule_complete(c.key, c.claim))
