"""Helpers every step shares: the action recorder (dry-run), Service/Pod lookups, events, follow-ups.

Steps observe live state, plan with the pure functions in `shared/domain/`, then apply through a
`Recorder`: every side effect is described as an action dict and executed only when not in dry-run, so
`run_step(..., dry_run=True)` returns exactly what would have been done.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from shared.deps import Deps
from shared.domain.backends import selects
from shared.domain.models import (
    EXISTED_LB_ANNOTATION,
    LB_ID_ANNOTATION,
    ObjectRef,
    PodInfo,
    ServiceInfo,
    StepRequest,
)
from shared.logging import get_logger
from shared.schedule import schedule_request

T = TypeVar("T")
log = get_logger("clb_direct.steps")


@dataclass
class Recorder:
    """Collects the actions a step takes; executes them unless `dry_run`."""

    dry_run: bool = False
    actions: list[dict[str, Any]] = field(default_factory=list)

    def do(self, action: str, fn: Callable[[], T], **details: Any) -> T | None:
        self.actions.append({"action": action, **details})
        if self.dry_run:
            return None
        result = fn()
        log.info(f"step.{action}", **{k: v for k, v in details.items() if isinstance(v, (str, int, float))})
        return result


def service_lb_id(service: ServiceInfo) -> str | None:
    """The CLB a Service uses: the adopted one, else the one the service step wrote back."""
    return service.annotations.get(EXISTED_LB_ANNOTATION) or service.annotations.get(LB_ID_ANNOTATION)


def selecting_services(deps: Deps, pod: PodInfo, cache: dict[str, list[ServiceInfo]]) -> list[ServiceInfo]:
    """Live direct-access Services in the Pod's namespace whose selector matches it."""
    if pod.namespace not in cache:
        cache[pod.namespace] = [s for s in deps.require_cluster().list_services(pod.namespace) if s.is_direct_access]
    return [s for s in cache[pod.namespace] if selects(s.selector, pod.labels)]


def emit(deps: Deps, rec: Recorder, regarding: ObjectRef, *, type: str, reason: str, message: str) -> None:
    """A Kubernetes Event; failures to record one never fail the step (events are best effort)."""

    def send() -> None:
        try:
            deps.require_cluster().emit_event(regarding, type=type, reason=reason, message=message)
        except Exception as exc:
            log.warning("event.emit_failed", reason=reason, error=str(exc))

    rec.do(
        "emit_event",
        send,
        kind=regarding.kind,
        name=f"{regarding.namespace}/{regarding.name}",
        type=type,
        reason=reason,
        message=message,
    )


def pod_ref(pod: PodInfo) -> ObjectRef:
    return ObjectRef(kind="Pod", namespace=pod.namespace, name=pod.name, uid=pod.uid)


def service_ref(service: ServiceInfo) -> ObjectRef:
    return ObjectRef(kind="Service", namespace=service.namespace, name=service.name, uid=service.uid)


def follow_up(deps: Deps, rec: Recorder, request: StepRequest) -> None:
    """Invoke another step asynchronously (the invoker queues it; SCF Event invocation in production).

    A request for later (`not_before` in the future) goes into the store's schedule instead, which a
    timer drains when it is due (`shared/schedule.py`)."""
    if request.not_before is not None and request.not_before > deps.clock.now():
        due_at = request.not_before
        rec.do(
            "schedule",
            lambda: schedule_request(deps.store, request, due_at),
            function=request.step,
            services=[str(s) for s in request.services],
            pods=[str(p) for p in request.pods],
            pod_uids=list(request.pod_uids),
            due_at=due_at,
        )
        return
    if deps.invoker is None:
        log.info("step.follow_up_skipped", step=request.step, why="no invoker configured")
        return
    invoker = deps.invoker
    payload = request.model_dump(mode="json", exclude_defaults=True)
    payload["step"] = request.step
    rec.do(
        "invoke",
        lambda: invoker.invoke_async(request.step, payload),
        function=request.step,
        services=[str(s) for s in request.services],
        pods=[str(p) for p in request.pods],
        not_before=request.not_before,
    )


def new_holder(step: str) -> str:
    return f"{step}-{uuid.uuid4().hex[:12]}"
