"""The direct-access steps: `run_step(deps, request, dry_run=False)` is the one entry point.

Called by the step functions' handlers (`functions/{service,bind,unbind,flip,guardian}`), by the router's
reconcile and replay, and by the CLI. Each step is level-triggered (re-reads live state; the request is
a hint), idempotent (a duplicate delivery with the same correlation id replays the stored result) and
honours `dry_run` (returns the planned actions, changes nothing). A request with `not_before` in the
future is put into the store's schedule (`shared/schedule.py`) and run by a timer when due; no function
sleeps waiting for it. A request carrying schedule claims completes them once it succeeded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shared.deps import Deps
from shared.domain.errors import ClbDirectError, InvalidInput
from shared.domain.failures import service_warning_reason
from shared.domain.models import ObjectRef, StepRequest
from shared.schedule import complete_claims, schedule_request
from shared.steps.common import Recorder, emit

_MAX_WARNED_SERVICES = 5
IDEMPOTENCY_RECORD_TTL_S = 3600.0


def _runner(step: str) -> Callable[[Deps, StepRequest, Recorder], dict[str, Any]]:
    if step == "service":
        from shared.steps.service import run_service

        return run_service
    if step in ("bind", "unbind"):
        from shared.steps.writer import run_bind, run_unbind

        return run_bind if step == "bind" else run_unbind
    if step == "flip":
        from shared.steps.flip import run_flip

        return run_flip
    if step == "guardian":
        from shared.steps.guardian import run_guardian

        return run_guardian
    raise InvalidInput(
        f"step {step!r} is not run by shared.steps (service, bind, unbind, flip, guardian); "
        "reconcile and health belong to the router"
    )


def run_step(
    deps: Deps, request: StepRequest, *, dry_run: bool = False, timeout_s: float | None = None
) -> dict[str, Any]:
    """Run one step and return its result: {"step", "dry_run", "result", "actions"}.

    `timeout_s` is the invocation's real timeout (the handler takes it from the SCF context); the
    idempotency claim expires after it, so a second invocation never runs beside a live first one.
    Without it, `Settings.function_timeout_s` (set per function in serverless.yml) applies."""
    runner = _runner(request.step)
    if request.not_before is not None and request.not_before > deps.clock.now() and not dry_run:
        keys = schedule_request(deps.store, request, request.not_before)
        return {"step": request.step, "dry_run": False, "result": {"scheduled": keys}, "actions": []}

    def execute() -> dict[str, Any]:
        rec = Recorder(dry_run=dry_run)
        try:
            result = runner(deps, request, rec)
        except ClbDirectError as exc:
            _warn_services(deps, request, rec, exc)
            raise
        return {"step": request.step, "dry_run": dry_run, "result": result, "actions": rec.actions}

    if dry_run:
        return execute()
    if not request.correlation_id or request.step == "flip":
        # A flip re-reads the Pod and the CLB and writes only a changed condition: running it twice is
        # harmless, while a claim made duplicates wait for each other (retried tens of seconds later).
        done = execute()
        complete_claims(deps.store, request)
        return done
    from shared.idempotency import run_idempotent

    # Keyed by the whole request incl. correlation id: a redelivered event replays; a new event (or a
    # reconcile pass) with the same targets runs again, as a level-triggered step should.
    result: dict[str, Any] = run_idempotent(
        deps.store,
        deps.clock,
        request.step,
        request.model_dump(mode="json"),
        execute,
        in_progress_ttl_s=timeout_s if timeout_s is not None else deps.settings.function_timeout_s,
        record_ttl_s=IDEMPOTENCY_RECORD_TTL_S,
    )
    complete_claims(deps.store, request)
    return result


def _warn_services(deps: Deps, request: StepRequest, rec: Recorder, exc: ClbDirectError) -> None:
    """Permission, quota and throttling failures also show as a Warning Event on the Services concerned."""
    reason = service_warning_reason(exc)
    if reason is None or deps.cluster is None:
        return
    for key in request.services[:_MAX_WARNED_SERVICES]:
        ref = ObjectRef(kind="Service", namespace=key.namespace, name=key.name)
        emit(deps, rec, ref, type="Warning", reason=reason, message=f"{request.step} step failed: {exc}"[:1000])


__all__ = ["run_step"]
