"""Bind and unbind steps: turn a request into per-CLB work items and run them through the CLB writer.

Called through `run_step` for StepRequest(step="bind") and StepRequest(step="unbind"). Both resolve
which CLBs are involved, queue typed `ClbWork` items (bind a Service or some of its Pods, unbind a Pod
UID) on that CLB's `ClbWriter` (one writer per CLB; concurrent requests coalesce into its next batch)
and report what the batch did — or that another invocation holding the lease will do it ("queued"). The
batch runs with a `FencedLoadBalancer`, so none of its CLB writes is made once another writer has taken
the lease over.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Any

from shared.deps import Deps
from shared.domain.clb_work import ClbWork
from shared.domain.models import BindingRecord, ServiceInfo, StepRequest
from shared.leases import ClbWriter, Fence, FencedLoadBalancer
from shared.steps.clb_batch import process_batch
from shared.steps.common import Recorder, follow_up, new_holder, selecting_services, service_lb_id


def write_clb(deps: Deps, lb_id: str, items: list[ClbWork], rec: Recorder, request: StepRequest) -> dict[str, Any]:
    """Run the items for one CLB as its writer, or queue them for the current writer."""
    if rec.dry_run:
        planned = process_batch(deps, lb_id, items, rec, correlation_id=request.correlation_id)
        # The typed plan itself (every CLB, Kubernetes and store action with its reason), as applied.
        return {"lb_id": lb_id, "writer": "dry-run", **planned.outcome, "plan": planned.model_dump(mode="json")}
    outcomes: list[dict[str, Any]] = []

    def work(batch: list[ClbWork], fence: Fence) -> None:
        fenced = dataclasses.replace(deps, clb=FencedLoadBalancer(deps.require_clb(), fence))
        outcomes.append(process_batch(fenced, lb_id, batch, rec, correlation_id=request.correlation_id).outcome)

    writer = ClbWriter(deps.store, deps.clock, holder=new_holder(request.step), ttl_s=deps.settings.lease_ttl_s)
    wrote = writer.run(lb_id, items, work)
    merged: dict[str, Any] = {"lb_id": lb_id, "writer": "self" if wrote else "queued", "batches": len(outcomes)}
    for outcome in outcomes:
        for key, value in outcome.items():
            if isinstance(value, dict):
                merged.setdefault(key, {}).update(value)
            else:
                merged.setdefault(key, []).extend(value)
    return merged


def run_bind(deps: Deps, request: StepRequest, rec: Recorder) -> dict[str, Any]:
    """Register the named Pods on every Service selecting them, and the Pods of the named Services.

    A Service named with none of the named Pods is bound whole (the Service changed, a reconcile); one that
    selects a named Pod (a Pod event) is bound for its named Pods only, so the batch reads and plans what
    changed and not the whole Service.
    """
    cluster = deps.require_cluster()
    services: dict[str, ServiceInfo] = {}
    for key in request.services:
        service = cluster.get_service(key.namespace, key.name)
        if service is not None and service.is_direct_access:
            services[str(service.key)] = service
    cache: dict[str, list[ServiceInfo]] = {}
    scoped: dict[str, set[str]] = defaultdict(set)
    for pod_key in request.pods:
        pod = cluster.get_pod(pod_key.namespace, pod_key.name)
        if pod is not None:
            for service in selecting_services(deps, pod, cache):
                services.setdefault(str(service.key), service)
                scoped[str(service.key)].add(str(pod.key))
    by_lb: dict[str, list[ClbWork]] = defaultdict(list)
    waiting: list[str] = []
    for name, service in sorted(services.items()):
        lb_id = service_lb_id(service)
        if lb_id and lb_id != "<new>":
            pods = sorted(scoped.get(name, ()))
            by_lb[lb_id].extend([ClbWork.bind(name, pod=pod) for pod in pods] or [ClbWork.bind(name)])
        else:
            waiting.append(name)
            # No CLB yet: the service step creates it and asks for this bind again.
            follow_up(
                deps,
                rec,
                StepRequest(
                    step="service",
                    services=[service.key],
                    reason="bind needs a CLB",
                    correlation_id=request.correlation_id,
                ),
            )
    results = [write_clb(deps, lb_id, items, rec, request) for lb_id, items in sorted(by_lb.items())]
    return {"clbs": results, "waiting_for_clb": waiting}


def run_unbind(deps: Deps, request: StepRequest, rec: Recorder) -> dict[str, Any]:
    """Drain / deregister the bindings of the named Pods (by UID or key) and Services, where still needed."""
    store, cluster = deps.store, deps.require_cluster()
    found: dict[tuple[str, str, str], BindingRecord] = {}

    def add(records: list[BindingRecord]) -> None:
        for b in records:
            found[(b.lb_id, b.listener_id, b.pod_uid)] = b

    for uid in request.pod_uids:
        add(store.list_bindings(pod_uid=uid))
    if request.pods:
        # The Pod object may be gone: match recorded bindings by namespace/name as well as by live UID.
        add(store.list_bindings(pods=[str(k) for k in request.pods]))
        for key in request.pods:
            pod = cluster.get_pod(key.namespace, key.name)
            if pod is not None:
                add(store.list_bindings(pod_uid=pod.uid))
    for service_key in request.services:
        add(store.list_bindings(service=str(service_key)))
    by_lb: dict[str, set[str]] = defaultdict(set)
    for binding in found.values():
        by_lb[binding.lb_id].add(binding.pod_uid)
    results = [
        write_clb(deps, lb_id, [ClbWork.unbind(uid) for uid in sorted(uids)], rec, request)
        for lb_id, uids in sorted(by_lb.items())
    ]
    return {"clbs": results, "bindings_considered": len(found)}
