"""The reconcile service: anti-entropy per direct-access Service, replay, and the `plan` dry run.

Called by `functions/reconcile/handler.py` (timer ticks, console test events `{"replay": {...}}`,
`StepRequest(step="reconcile")` from the router) and by the CLI (`clb-direct replay`, `plan`). For each
Service it runs the service, unbind, bind and flip steps (`shared.steps.run_step`, which re-read live
state and do only what is missing; bind also removes extra targets from the Service's listeners, see
`shared/domain/extra_targets.py`), unless its checkpoint hash is unchanged since the last clean pass.
The checkpoint covers everything a pass compares (Service spec, TkeServiceConfig, cluster switches,
selected Pods' uid/rv, the CLB's listeners and targets, binding records) and is the snapshot the pass
read before its steps ran, so anything that changed during the pass is walked by the next one. An idle
cluster costs a listener and a target read per CLB. Webhook damage is the guardian's job: each timer pass invokes it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from shared.deps import Deps
from shared.domain.errors import ClbDirectError, NotFound
from shared.domain.models import (
    LB_ID_ANNOTATION,
    SERVICE_FINALIZER,
    TKE_SERVICE_CONFIG_ANNOTATION,
    ObjectKey,
    ServiceInfo,
    StepRequest,
)
from shared.domain.routing import ObjectChange, plan_changes, selects
from shared.keys import checkpoint_key
from shared.logging import get_logger
from shared.schedule import drain_schedule

StepRunner = Callable[..., dict[str, Any]]

# A clean checkpoint is trusted this long; then the Service is walked again even if nothing hashed
# changed (health or CLB drift the hash cannot see).
CHECKPOINT_TTL_S = 6 * 3600.0
SERVICE_STEPS = ("service", "unbind", "bind", "flip")

log = get_logger("clb_direct.reconcile")


def _runner(runner: StepRunner | None) -> StepRunner:
    if runner is not None:
        return runner
    from shared.steps import run_step  # imported late: steps pull in planners the router never needs

    return run_step


def checkpoint_hash(deps: Deps, service: ServiceInfo) -> str:
    """Hash of everything a pass compares: the Service spec, its TkeServiceConfig, the cluster switches,
    the selected Pods (uid, rv), the CLB's listeners and targets, and the Service's binding records."""
    cluster = deps.require_cluster()
    pods = cluster.list_pods(service.namespace, service.selector) if service.selector else []
    lb_id = service.annotations.get(LB_ID_ANNOTATION)
    clb = deps.require_clb()
    listeners = sorted(listener.model_dump_json() for listener in clb.list_listeners(lb_id)) if lb_id else []
    targets = sorted(t.model_dump_json() for t in clb.list_targets(lb_id)) if lb_id else []
    config_name = service.annotations.get(TKE_SERVICE_CONFIG_ANNOTATION)
    bindings = deps.store.list_bindings(service=str(service.key))
    material = {
        "service": service.model_dump(mode="json", exclude={"resource_version", "ingress_ips"}),
        "tke_service_config": cluster.get_tke_service_config(service.namespace, config_name) if config_name else None,
        "cluster_config": cluster.get_cluster_config(),
        "pods": sorted((p.uid, p.resource_version) for p in pods),
        "listeners": listeners,
        "targets": targets,
        "bindings": sorted(b.model_dump_json() for b in bindings),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


def _steps_for_service(deps: Deps, service: ServiceInfo | None, key: ObjectKey, reason: str) -> list[StepRequest]:
    lb_id = service.annotations.get(LB_ID_ANNOTATION) if service else None
    bound = deps.store.list_bindings(service=str(key))
    lb_id = lb_id or next((b.lb_id for b in bound), None)
    bound_pods = {b.pod_uid: ObjectKey(namespace=b.namespace, name=b.pod_name) for b in bound}
    common: dict[str, Any] = {"services": [key], "lb_id": lb_id, "reason": reason}
    return [
        StepRequest(step="service", **common),
        # Unbind looks at what is bound now (the Pods may be gone); bind and flip at what is selected.
        StepRequest(step="unbind", pods=list(bound_pods.values()), pod_uids=list(bound_pods), **common),
        StepRequest(step="bind", **common),
        StepRequest(step="flip", **common),
    ]


def reconcile_service(
    deps: Deps,
    key: ObjectKey,
    *,
    force: bool = False,
    dry_run: bool = False,
    reason: str = "reconcile",
    runner: StepRunner | None = None,
) -> dict[str, Any]:
    """Converge one Service (or tear down what a vanished one left). Skips an unchanged checkpoint."""
    run = _runner(runner)
    cluster = deps.require_cluster()
    service = cluster.get_service(key.namespace, key.name)
    if service is None and not deps.store.list_bindings(service=str(key)):
        if dry_run or force:
            raise NotFound(f"Service {key} does not exist and nothing is bound for it; check the name")
        return {"service": str(key), "skipped": "gone"}
    checkpoint = deps.store.kv_get(checkpoint_key(key), now=deps.clock.now())
    # The snapshot this pass works from. After a clean pass it becomes the checkpoint: whatever changed
    # during the pass (the steps' own writes, a port removed meanwhile) differs from it, so the next
    # pass walks again and finds it; a checkpoint from a later re-read could absorb such a change unseen.
    observed = checkpoint_hash(deps, service) if service is not None else None
    if not (force or dry_run) and observed is not None and checkpoint == observed:
        return {"service": str(key), "skipped": "unchanged"}
    outcome: list[dict[str, Any]] = []
    failed = False
    for request in _steps_for_service(deps, service, key, reason):
        try:
            outcome.append({"step": request.step, "result": run(deps, request, dry_run=dry_run)})
        except ClbDirectError as exc:
            # One failed step must not starve the others; the next pass retries (no checkpoint written).
            failed = True
            outcome.append({"step": request.step, "error": exc.to_dict()})
            log.warning("reconcile.step_failed", service=str(key), step=request.step, error=exc.message)
    if not dry_run:
        if failed or observed is None:
            deps.store.kv_delete(checkpoint_key(key))
        else:
            deps.store.kv_set(checkpoint_key(key), observed, ttl_s=CHECKPOINT_TTL_S, now=deps.clock.now())
    return {"service": str(key), "dryRun": dry_run, "steps": outcome}


def _candidate_services(deps: Deps) -> list[ObjectKey]:
    """Direct-access Services, ones still carrying our finalizer, and ones bindings still name."""
    keys: dict[str, ObjectKey] = {}
    for service in deps.require_cluster().list_services():
        if service.is_direct_access or SERVICE_FINALIZER in service.finalizers:
            keys[str(service.key)] = service.key
    for binding in deps.store.list_bindings():
        if binding.service not in keys and "/" in binding.service:
            keys[binding.service] = ObjectKey.parse(binding.service)
    return [keys[k] for k in sorted(keys)]


def reconcile_all(
    deps: Deps, *, force: bool = False, correlation_id: str | None = None, runner: StepRunner | None = None
) -> dict[str, Any]:
    """Drain the due schedule, one anti-entropy pass over every candidate Service, then ask the guardian
    to check the webhook."""
    scheduled = drain_schedule(deps) if deps.invoker is not None else None
    results = [
        reconcile_service(deps, key, force=force, reason=f"reconcile {correlation_id or ''}".strip(), runner=runner)
        for key in _candidate_services(deps)
    ]
    guardian = None
    if deps.invoker is not None:
        request = StepRequest(step="guardian", reason="reconcile pass", correlation_id=correlation_id)
        guardian = deps.invoker.invoke_async("guardian", request.model_dump(mode="json"))
    walked = [r for r in results if "steps" in r]
    log.info("reconcile.pass", services=len(results), walked=len(walked), forced=force)
    return {
        "services": results,
        "walked": len(walked),
        "skipped": len(results) - len(walked),
        "guardian": guardian,
        "schedule": scheduled,
    }


def replay_pod(deps: Deps, key: ObjectKey, *, runner: StepRunner | None = None) -> dict[str, Any]:
    """Re-run unbind/bind/flip for one Pod against the Services that select it now."""
    run = _runner(runner)
    pod = deps.require_cluster().get_pod(key.namespace, key.name)
    bound = deps.store.list_bindings(pods=[str(key)])
    if pod is None and not bound:
        raise NotFound(f"Pod {key} does not exist and nothing is bound for it; check the name")
    uids = sorted({b.pod_uid for b in bound} | ({pod.uid} if pod else set()))
    services = [
        s.key
        for s in deps.require_cluster().list_services(key.namespace)
        if pod is not None and s.is_direct_access and selects(s.selector, pod.labels)
    ]
    outcome = []
    for step in ("unbind", "bind", "flip"):
        request = StepRequest(step=step, pods=[key], pod_uids=uids, services=services, reason=f"replay pod {key}")
        outcome.append({"step": step, "result": run(deps, request, dry_run=False)})
    return {"pod": str(key), "steps": outcome}


def replay_event(deps: Deps, event_id: str, *, runner: StepRunner | None = None) -> dict[str, Any]:
    """Plan a stored event again (against today's selectors) and run its steps now."""
    run = _runner(runner)
    stored = deps.store.get_event(event_id, now=deps.clock.now())
    if stored is None:
        raise NotFound(f"event {event_id} is not in the event log (expired or never accepted); see `clb-direct events`")
    change = ObjectChange.model_validate(stored.payload)
    selectors = {change.namespace: deps.store.list_selectors(change.namespace)}
    outcome: list[dict[str, Any]] = []
    for request in plan_changes([change], selectors, correlation_id=f"replay-{event_id}"):
        if request.step != "reconcile":
            outcome.append({"step": request.step, "result": run(deps, request, dry_run=False)})
        elif request.pods:
            outcome.extend(replay_pod(deps, pod, runner=run)["steps"] for pod in request.pods)
        else:
            outcome.append({"step": "reconcile", "result": reconcile_all(deps, force=True, runner=run)})
    return {"event": event_id, "summary": stored.summary, "steps": outcome}


def handle_step_request(deps: Deps, request: StepRequest, *, runner: StepRunner | None = None) -> dict[str, Any]:
    """A `reconcile` request from the router: one Pod, some Services, or (no target) a forced full pass."""
    if request.pods:
        return {"pods": [replay_pod(deps, pod, runner=runner) for pod in request.pods]}
    if request.services:
        return {
            "services": [
                reconcile_service(deps, s, force=True, reason=request.reason, runner=runner) for s in request.services
            ]
        }
    return reconcile_all(deps, force=True, correlation_id=request.correlation_id, runner=runner)
