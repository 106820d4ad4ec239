"""The service step: create or adopt a Service's CLB, keep its listeners, write back, tear down.

Called through `run_step` for StepRequest(step="service") by the router, reconcile and replay. For a
direct-access Service it writes the selector index entry first (before the CLB, so admission gates Pods
created while the CLB is being made), ensures the CLB (ClientToken + ownership tags, or the adopted
`tke-existed-lbid`), a cleanup finalizer, one listener per port with TkeServiceConfig settings, the
`loadbalance-id` annotation, `status.loadBalancer.ingress` and the index entry's CLB id, then asks `bind`
to register the Pods (and, for a port conflict on an adopted CLB, `flip` to say so on their gates). When
the Service is deleted or loses the annotation it deletes only what it created (never an adopted CLB),
releases the Pods' gates (rule 8) and removes the finalizer.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from shared.deps import Deps
from shared.domain.errors import ConfigError, LimitExceeded, NotFound, PermanentError
from shared.domain.gate import REASON_PORT_CONFLICT
from shared.domain.limits import cluster_version_problem
from shared.domain.listeners import (
    ListenerPlan,
    desired_listeners,
    is_owned_listener,
    plan_listeners,
    port_conflict_text,
)
from shared.domain.models import (
    EXISTED_LB_ANNOTATION,
    INTERNAL_SUBNET_ANNOTATION,
    LB_ID_ANNOTATION,
    OWNER_TAG_CLUSTER,
    OWNER_TAG_CREATED_BY,
    OWNER_TAG_SERVICE,
    SERVICE_FINALIZER,
    TKE_SERVICE_CONFIG_ANNOTATION,
    BindingRecord,
    LoadBalancerInfo,
    LoadBalancerSpec,
    ObjectKey,
    SelectorEntry,
    ServiceInfo,
    StepRequest,
)
from shared.domain.termination import admission_annotations
from shared.domain.tke_service_config import TkeServiceConfig, parse_tke_service_config
from shared.keys import service_record_key
from shared.steps.common import Recorder, emit, follow_up, service_ref
from shared.steps.flip import flip_pods


def run_service(deps: Deps, request: StepRequest, rec: Recorder) -> dict[str, Any]:
    return {"services": [sync_service(deps, key, request, rec) for key in request.services]}


def sync_service(deps: Deps, key: ObjectKey, request: StepRequest, rec: Recorder) -> dict[str, Any]:
    service = deps.require_cluster().get_service(key.namespace, key.name)
    if service is not None and service.is_direct_access:
        return ensure_service(deps, service, request, rec)
    return teardown_service(deps, key, service, rec)


def _owner_tags(deps: Deps, key: ObjectKey) -> dict[str, str]:
    return {
        OWNER_TAG_CLUSTER: deps.settings.cluster_id,
        OWNER_TAG_CREATED_BY: "yes",
        OWNER_TAG_SERVICE: f"{key.namespace}/{key.name}",
    }


def _load_config(deps: Deps, service: ServiceInfo, rec: Recorder) -> TkeServiceConfig | None:
    name = service.annotations.get(TKE_SERVICE_CONFIG_ANNOTATION)
    if not name:
        return None
    obj = deps.require_cluster().get_tke_service_config(service.namespace, name)
    try:
        if obj is None:
            raise ConfigError(
                f"TkeServiceConfig {service.namespace}/{name} named by {TKE_SERVICE_CONFIG_ANNOTATION} on Service "
                f"{service.key} does not exist; create it or remove the annotation"
            )
        return parse_tke_service_config(obj, name=f"{service.namespace}/{name}")
    except ConfigError as exc:
        emit(deps, rec, service_ref(service), type="Warning", reason="InvalidTkeServiceConfig", message=exc.message)
        raise


def _ensure_load_balancer(deps: Deps, service: ServiceInfo, rec: Recorder) -> tuple[LoadBalancerInfo | None, bool]:
    """(the CLB, adopted?). In dry-run a CLB that would be created is returned as None."""
    clb = deps.require_clb()
    adopted_id = service.annotations.get(EXISTED_LB_ANNOTATION)
    if adopted_id:
        info = clb.describe_load_balancer(adopted_id)
        if info is None:
            message = (
                f"CLB {adopted_id} named by {EXISTED_LB_ANNOTATION} on Service {service.key} does not exist in "
                f"region {deps.settings.region}; fix the annotation"
            )
            emit(deps, rec, service_ref(service), type="Warning", reason="LoadBalancerNotFound", message=message)
            raise NotFound(message)
        return info, True
    known = service.annotations.get(LB_ID_ANNOTATION)
    if known:
        info = clb.describe_load_balancer(known)
        if info is not None and info.tags.get(OWNER_TAG_SERVICE) == str(service.key):
            return info, False
    tags = _owner_tags(deps, service.key)
    found = clb.find_load_balancers(tags)
    if found:
        return found[0], False
    subnet = service.annotations.get(INTERNAL_SUBNET_ANNOTATION)
    spec = LoadBalancerSpec(
        name=f"clb-direct-{service.namespace}-{service.name}"[:60],
        internal_subnet_id=subnet,
        vpc_id=deps.settings.vpc_id,
        tags=tags,
        # One token per Service UID: a retried create after a lost response returns the same CLB.
        client_token=f"clb-direct-{service.uid}"[:64],
    )
    created = rec.do(
        "create_load_balancer",
        lambda: clb.create_load_balancer(spec),
        service=str(service.key),
        internal=subnet is not None,
    )
    if created is not None:
        emit(
            deps,
            rec,
            service_ref(service),
            type="Normal",
            reason="EnsuredLoadBalancer",
            message=f"created CLB {created.lb_id} ({'private' if subnet else 'public'}) for direct access",
        )
    return created, False


def ensure_service(deps: Deps, service: ServiceInfo, request: StepRequest, rec: Recorder) -> dict[str, Any]:
    """Observe the Service's CLB and listeners, plan the listener changes (pure), apply them, write back."""
    cluster, clb = deps.require_cluster(), deps.require_clb()
    problem = cluster_version_problem(cluster.server_version())
    if problem:
        emit(deps, rec, service_ref(service), type="Warning", reason="UnsupportedClusterVersion", message=problem)
        raise LimitExceeded(problem)
    config = _load_config(deps, service, rec)  # before any change: a bad config changes nothing
    if SERVICE_FINALIZER not in service.finalizers:
        rec.do(
            "add_finalizer",
            lambda: cluster.patch_service_metadata(service.namespace, service.name, add_finalizers=[SERVICE_FINALIZER]),
            service=str(service.key),
        )
    _index_before_clb(deps, rec, service)
    info, adopted = _ensure_load_balancer(deps, service, rec)
    lb_id = info.lb_id if info else None
    actual = clb.list_listeners(lb_id) if lb_id else []
    plan = plan_listeners(
        desired_listeners(service, config),
        actual,
        namespace=service.namespace,
        service=service.name,
        owns_lb=not adopted,
    )
    target = lb_id or "<new>"
    _apply_listeners(deps, rec, target, plan)
    _warn_port_conflicts(deps, rec, service, target, plan)
    if lb_id is not None:
        _forget_gone_listeners(deps, rec, lb_id)
    if config is not None and (plan.update or plan.create):
        message = f"applied TkeServiceConfig {config.name} to listeners of CLB {target}"
        emit(deps, rec, service_ref(service), type="Normal", reason="AppliedTkeServiceConfig", message=message)
    _write_back(deps, rec, service, target, list(info.vips) if info else [])
    _record_service(deps, rec, service, lb_id=lb_id, target=target, adopted=adopted)
    follow_up(
        deps,
        rec,
        StepRequest(
            step="bind",
            services=[service.key],
            lb_id=lb_id,
            reason="service ensured",
            correlation_id=request.correlation_id,
        ),
    )
    return {
        "service": str(service.key),
        "lb_id": target,
        "adopted": adopted,
        "listeners": {
            "created": len(plan.create),
            "updated": len(plan.update),
            "deleted": len(plan.delete),
            "conflicts": len(plan.conflicts),
        },
    }


def _apply_listeners(deps: Deps, rec: Recorder, target: str, plan: ListenerPlan) -> None:
    clb = deps.require_clb()
    for spec in plan.create:
        create = partial(clb.create_listener, target, spec)
        rec.do("create_listener", create, lb_id=target, port=spec.port, protocol=spec.protocol)
    for listener, spec, diffs in plan.update:
        modify = partial(clb.modify_listener, target, listener.listener_id, spec)
        rec.do("modify_listener", modify, lb_id=target, listener_id=listener.listener_id, changed=diffs)
    for listener in plan.delete:
        delete = partial(clb.delete_listener, target, listener.listener_id)
        rec.do("delete_listener", delete, lb_id=target, listener_id=listener.listener_id)


def _warn_port_conflicts(deps: Deps, rec: Recorder, service: ServiceInfo, target: str, plan: ListenerPlan) -> None:
    """A port of an adopted CLB held by a listener we did not create: a Warning, and nothing written there."""
    for spec, listener in plan.conflicts:
        message = port_conflict_text(spec.protocol, spec.port, target, listener)
        emit(deps, rec, service_ref(service), type="Warning", reason=REASON_PORT_CONFLICT, message=message)
    if plan.conflicts:
        # No target is registered behind a conflicting port, so no bind asks for a flip: ask for one here,
        # so the selected Pods' gates say why they are not ready (and a fail-open deadline gets scheduled).
        request = StepRequest(step="flip", services=[service.key], lb_id=target, reason="listener port conflict")
        follow_up(deps, rec, request)


def _forget_gone_listeners(deps: Deps, rec: Recorder, lb_id: str) -> None:
    """Forget the binding records of every listener the CLB no longer has: deleted just now, or earlier by a
    run that died before it forgot them (its retry no longer plans that listener's deletion, so keying on
    the plan alone would keep those records for ever). Read after the changes, so a listener another run
    created meanwhile keeps its records."""
    live = {listener.listener_id for listener in deps.require_clb().list_listeners(lb_id)}
    for binding in deps.store.list_bindings(lb_id=lb_id):
        if binding.listener_id not in live:
            rec.do(
                "forget_binding",
                partial(deps.store.delete_binding, binding.lb_id, binding.listener_id, binding.pod_uid),
                pod=_pod_name(binding),
                listener_id=binding.listener_id,
                reason="its listener is gone",
            )


def _write_back(deps: Deps, rec: Recorder, service: ServiceInfo, target: str, vips: list[str]) -> None:
    """The CLB id annotation and `status.loadBalancer` on the Service, where they differ."""
    cluster = deps.require_cluster()
    if service.annotations.get(LB_ID_ANNOTATION) != target:
        rec.do(
            "annotate_lb_id",
            lambda: cluster.patch_service_metadata(
                service.namespace, service.name, annotations={LB_ID_ANNOTATION: target}
            ),
            lb_id=target,
        )
    if vips and sorted(vips) != sorted(service.ingress_ips):
        rec.do(
            "set_ingress",
            lambda: cluster.set_service_load_balancer_status(service.namespace, service.name, vips),
            ips=",".join(vips),
        )


def _selector_entry(service: ServiceInfo, lb_id: str | None, now: float) -> SelectorEntry:
    return SelectorEntry(
        namespace=service.namespace,
        service=service.name,
        selector=service.selector,
        lb_id=lb_id,
        updated_at=now,
        annotations=admission_annotations(service.annotations),
    )


def _index_before_clb(deps: Deps, rec: Recorder, service: ServiceInfo) -> None:
    """Admission gates Pods by the selector index: write this Service's entry before the CLB is created.

    Creating a CLB takes seconds (and may fail and be retried); a Pod created meanwhile would otherwise be
    admitted without the gate, which can never be added afterwards. Written only when missing or changed.
    An adopted CLB is only described (fast); a missing one must not gate Pods that nothing will serve,
    so that entry is written at the end as before.
    """
    if service.annotations.get(EXISTED_LB_ANNOTATION):
        return
    current = next((e for e in deps.store.list_selectors(service.namespace) if e.service == service.name), None)
    entry = _selector_entry(service, service.annotations.get(LB_ID_ANNOTATION), deps.clock.now())
    if current is not None and (current.selector, current.annotations) == (entry.selector, entry.annotations):
        return
    rec.do("index_selector", lambda: deps.store.put_selector(entry), service=str(service.key), before_clb=True)


def _record_service(
    deps: Deps, rec: Recorder, service: ServiceInfo, *, lb_id: str | None, target: str, adopted: bool
) -> None:
    """The selector index entry (for admission) and the record of what the service step created."""
    now = deps.clock.now()
    entry = _selector_entry(service, lb_id, now)
    rec.do("index_selector", lambda: deps.store.put_selector(entry), service=str(service.key))
    record = json.dumps({"lb_id": target, "adopted": adopted, "uid": service.uid})
    rec.do(
        "record_service",
        lambda: deps.store.kv_set(service_record_key(service.key), record, ttl_s=None, now=now),
        service=str(service.key),
    )


def _pod_name(binding: BindingRecord) -> str:
    return f"{binding.namespace}/{binding.pod_name}"


def teardown_service(deps: Deps, key: ObjectKey, service: ServiceInfo | None, rec: Recorder) -> dict[str, Any]:
    """Delete what the service step created, release the Pods, drop the finalizer. Safe to repeat."""
    store, now = deps.store, deps.clock.now()
    raw = store.kv_get(service_record_key(key), now=now)
    record: dict[str, Any] = json.loads(raw) if raw else {}
    if service is not None and record.get("uid") not in (None, service.uid):
        record = {}  # a record left by an older Service object of the same name: not ours to act on
    annotations = service.annotations if service else {}
    lb_id = record.get("lb_id") or annotations.get(LB_ID_ANNOTATION)
    adopted = bool(record.get("adopted")) or EXISTED_LB_ANNOTATION in annotations
    deleted: list[str] = []
    if lb_id and lb_id != "<new>":
        deleted = _delete_owned(deps, key, lb_id, adopted=adopted, rec=rec)
    for binding in store.list_bindings(service=str(key)):
        rec.do(
            "forget_binding",
            partial(store.delete_binding, binding.lb_id, binding.listener_id, binding.pod_uid),
            pod=_pod_name(binding),
        )
    selector = (
        service.selector
        if service
        else next((e.selector for e in store.list_selectors(key.namespace) if e.service == key.name), {})
    )
    rec.do("unindex_selector", lambda: store.delete_selector(key.namespace, key.name), service=str(key))
    rec.do("forget_service", lambda: store.kv_delete(service_record_key(key)), service=str(key))
    released = _release_pods(deps, key, selector, rec)
    if service is not None:
        cluster = deps.require_cluster()
        if LB_ID_ANNOTATION in annotations:
            rec.do(
                "remove_lb_id",
                lambda: cluster.patch_service_metadata(key.namespace, key.name, annotations={LB_ID_ANNOTATION: None}),
                service=str(key),
            )
        if service.ingress_ips and service.deletion_timestamp is None:
            rec.do(
                "clear_ingress",
                lambda: cluster.set_service_load_balancer_status(key.namespace, key.name, []),
                service=str(key),
            )
        if SERVICE_FINALIZER in service.finalizers:
            rec.do(
                "remove_finalizer",
                lambda: cluster.patch_service_metadata(key.namespace, key.name, remove_finalizers=[SERVICE_FINALIZER]),
                service=str(key),
            )
        if deleted or released:
            emit(
                deps,
                rec,
                service_ref(service),
                type="Normal",
                reason="DirectAccessRemoved",
                message=f"removed {', '.join(deleted) or 'no CLB resources'}; released {released} Pod gate(s)",
            )
    return {"service": str(key), "torn_down": True, "deleted": deleted, "released_pods": released}


def _delete_owned(deps: Deps, key: ObjectKey, lb_id: str, *, adopted: bool, rec: Recorder) -> list[str]:
    clb = deps.require_clb()
    info = clb.describe_load_balancer(lb_id)
    if info is None:
        return []
    owned = (
        not adopted
        and info.tags.get(OWNER_TAG_SERVICE) == str(key)
        and info.tags.get(OWNER_TAG_CLUSTER) == deps.settings.cluster_id
    )
    if owned:
        rec.do("delete_load_balancer", lambda: clb.delete_load_balancer(lb_id), lb_id=lb_id)
        return [f"CLB {lb_id}"]
    if not adopted:
        # Tags say someone else owns it: refuse rather than delete a CLB we cannot prove is ours.
        raise PermanentError(
            f"CLB {lb_id} recorded for Service {key} is not tagged {OWNER_TAG_SERVICE}={key} in cluster "
            f"{deps.settings.cluster_id}; not deleting it — remove it by hand if it is really unused"
        )
    deleted = []
    for listener in clb.list_listeners(lb_id):
        if is_owned_listener(listener, key.namespace, key.name):
            rec.do(
                "delete_listener",
                partial(clb.delete_listener, lb_id, listener.listener_id),
                lb_id=lb_id,
                listener_id=listener.listener_id,
            )
            deleted.append(f"listener {listener.listener_id}")
    return deleted


def _release_pods(deps: Deps, key: ObjectKey, selector: dict[str, str], rec: Recorder) -> int:
    """Re-decide the gates of the Pods this Service selected (rule 8): the flip releases them."""
    if not selector:
        return 0
    pods = deps.require_cluster().list_pods(key.namespace, selector)
    outcome = flip_pods(deps, pods, rec)
    return sum(1 for item in outcome if item.get("status") == "True")
