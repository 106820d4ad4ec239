"""The service step: observe a Service -> a typed `ServicePlan` (pure) -> one applier.

Called through `run_step` for StepRequest(step="service") by the router, reconcile and replay. For a
direct-access Service the plan writes the selector index entry first (before the CLB, so admission
gates Pods created while the CLB is being made), ensures the CLB (ClientToken + ownership tags, or the
adopted `tke-existed-lbid`), a cleanup finalizer, one listener per port with TkeServiceConfig settings,
the `loadbalance-id` annotation, `status.loadBalancer.ingress` and the index entry's CLB id, then asks
`bind` to register the Pods (and, for a port conflict on an adopted CLB, `flip` to say so on their gates).
When the Service is deleted or loses the annotation it deletes only what it created (never an adopted CLB),
releases the Pods' gates (rule 8) and removes the finalizer. The rules are in
`shared.domain.service_plan`; this module reads what they need (`observe_service`) and carries the plan
out (`apply_service_plan`) under the Service's lease, its CLB writes fenced (`shared.leases`). A dry run
records the actions, executes none, and returns the plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

from shared.deps import Deps
from shared.domain.batch import EmitEvent, FollowUp, ForgetBinding
from shared.domain.errors import ConfigError
from shared.domain.limits import cluster_version_problem
from shared.domain.models import (
    EXISTED_LB_ANNOTATION,
    LB_ID_ANNOTATION,
    TKE_SERVICE_CONFIG_ANNOTATION,
    LoadBalancerInfo,
    ObjectKey,
    ServiceInfo,
    StepRequest,
)
from shared.domain.service_plan import (
    NEW_LB,
    CreateListener,
    CreateLoadBalancer,
    DeleteListener,
    DeleteLoadBalancer,
    ForgetService,
    IndexSelector,
    ModifyListener,
    PatchService,
    RecordService,
    ReleasePods,
    ReportRemoved,
    ServiceAction,
    ServicePlan,
    ServiceRecord,
    ServiceSnapshot,
    SetIngress,
    UnindexSelector,
    is_service_lb,
    owner_tags,
    plan_service,
    teardown_target,
    uses_direct_access,
    with_lb_id,
)
from shared.domain.tke_service_config import TkeServiceConfig, parse_tke_service_config
from shared.keys import service_lease_name, service_record_key
from shared.leases import FencedLoadBalancer, exclusive
from shared.ports import LoadBalancer
from shared.steps.common import Recorder, emit, follow_up, new_holder
from shared.steps.flip import flip_pods


def run_service(deps: Deps, request: StepRequest, rec: Recorder) -> dict[str, Any]:
    return {"services": [sync_service(deps, key, request, rec) for key in request.services]}


def sync_service(deps: Deps, key: ObjectKey, request: StepRequest, rec: Recorder) -> dict[str, Any]:
    """Observe, plan and apply for one Service; a dry run also returns the plan itself."""
    plan = plan_service(observe_service(deps, key), correlation_id=request.correlation_id)
    result = apply_service_plan(deps, plan, rec)
    if rec.dry_run:
        result["plan"] = plan.model_dump(mode="json")
    return result


# ----------------------------------------------------------------------------------------------- observe
def observe_service(deps: Deps, key: ObjectKey) -> ServiceSnapshot:
    """Everything the plan for this Service needs, each thing read once (and no more than the plan needs)."""
    service = deps.require_cluster().get_service(key.namespace, key.name)
    settings = deps.settings
    snap = ServiceSnapshot(
        key=key,
        service=service,
        now=deps.clock.now(),
        cluster_id=settings.cluster_id,
        region=settings.region,
        vpc_id=settings.vpc_id,
    )
    if service is not None and uses_direct_access(service):
        return snap.model_copy(update=_observe_ensure(deps, service))
    return snap.model_copy(update=_observe_teardown(deps, key, service))


def _observe_ensure(deps: Deps, service: ServiceInfo) -> dict[str, Any]:
    problem = cluster_version_problem(deps.require_cluster().server_version())
    if problem:
        return {"version_problem": problem}
    try:
        config = _load_config(deps, service)
    except ConfigError as exc:
        return {"config_problem": exc.message}
    found: dict[str, Any] = {"config": config}
    if not service.annotations.get(EXISTED_LB_ANNOTATION):
        entries = deps.store.list_selectors(service.namespace)
        found["indexed"] = next((e for e in entries if e.service == service.name), None)
    lb, adopted = _find_load_balancer(deps, service)
    found.update(lb=lb, adopted=adopted)
    if lb is not None:
        # Records before listeners: a record then always names a listener the listing shows, or one
        # deleted since (whose records the plan forgets).
        found["bindings"] = deps.store.list_bindings(lb_id=lb.lb_id)
        found["listeners"] = deps.require_clb().list_listeners(lb.lb_id)
    return found


def _load_config(deps: Deps, service: ServiceInfo) -> TkeServiceConfig | None:
    name = service.annotations.get(TKE_SERVICE_CONFIG_ANNOTATION)
    if not name:
        return None
    obj = deps.require_cluster().get_tke_service_config(service.namespace, name)
    if obj is None:
        raise ConfigError(
            f"TkeServiceConfig {service.namespace}/{name} named by {TKE_SERVICE_CONFIG_ANNOTATION} on Service "
            f"{service.key} does not exist; create it or remove the annotation"
        )
    return parse_tke_service_config(obj, name=f"{service.namespace}/{name}")


def _find_load_balancer(deps: Deps, service: ServiceInfo) -> tuple[LoadBalancerInfo | None, bool]:
    """(the Service's CLB or None, adopted?): the adopted one, else the annotated one if it was created for
    this Service, else one tagged for it (a create whose response was lost)."""
    clb = deps.require_clb()
    adopted_id = service.annotations.get(EXISTED_LB_ANNOTATION)
    if adopted_id:
        return clb.describe_load_balancer(adopted_id), True
    known = service.annotations.get(LB_ID_ANNOTATION)
    if known and known != NEW_LB:
        info = clb.describe_load_balancer(known)
        if info is not None and is_service_lb(info, service.key):
            return info, False
    found = clb.find_load_balancers(owner_tags(deps.settings.cluster_id, service.key))
    return (found[0] if found else None), False


def _observe_teardown(deps: Deps, key: ObjectKey, service: ServiceInfo | None) -> dict[str, Any]:
    store = deps.store
    raw = store.kv_get(service_record_key(key), now=deps.clock.now())
    record = ServiceRecord.model_validate_json(raw) if raw else None
    lb_id, adopted = teardown_target(key, service, record)
    lb = deps.require_clb().describe_load_balancer(lb_id) if lb_id else None
    found: dict[str, Any] = {"record": record, "lb": lb, "adopted": adopted}
    if lb is not None and adopted:
        found["listeners"] = deps.require_clb().list_listeners(lb_id)
    found["bindings"] = store.list_bindings(service=str(key))
    selector = (
        service.selector
        if service
        else next((e.selector for e in store.list_selectors(key.namespace) if e.service == key.name), {})
    )
    found["selector"] = selector
    if selector:
        found["pods"] = deps.require_cluster().list_pods(key.namespace, selector)
    return found


# ------------------------------------------------------------------------------------------------- apply
def apply_service_plan(deps: Deps, plan: ServicePlan, rec: Recorder) -> dict[str, Any]:
    """Carry out `plan` in order through `rec` (which only records in a dry run); then fail with its
    refusal, if it has one. Returns the step's summary of what was done."""
    if rec.dry_run or not plan.writes_clb:
        applier = _apply_all(deps, plan, rec, deps.require_clb())
    else:
        # One service step per Service writes at a time, and none once its lease was taken over.
        lease = service_lease_name(plan.service)
        holder, subject = new_holder("service"), f"the CLB of Service {plan.service}"
        settings = deps.settings
        with exclusive(deps.store, deps.clock, lease=lease, subject=subject, holder=holder,
                       ttl_s=settings.lease_ttl_s, wait_s=settings.clb_call_deadline_s) as fence:  # fmt: skip
            applier = _apply_all(deps, plan, rec, FencedLoadBalancer(deps.require_clb(), fence))
    outcome = dict(plan.outcome)
    if applier.created is not None and outcome.get("lb_id") == NEW_LB:
        outcome["lb_id"] = applier.created.lb_id
    if "torn_down" in outcome:
        outcome["released_pods"] = applier.released
    return outcome


def _apply_all(deps: Deps, plan: ServicePlan, rec: Recorder, clb: LoadBalancer) -> _Applier:
    applier = _Applier(deps, rec, plan.service, clb)
    for action in plan.actions:
        applier.apply(action if applier.created is None else with_lb_id(action, applier.created.lb_id))
    if plan.refusal is not None:
        raise plan.refusal.exception()
    return applier


@dataclass
class _Applier:
    deps: Deps
    rec: Recorder
    service: str
    clb: LoadBalancer
    created: LoadBalancerInfo | None = None
    released: int = 0
    key: ObjectKey = field(init=False)

    def __post_init__(self) -> None:
        self.key = ObjectKey.parse(self.service)

    def apply(self, action: ServiceAction) -> None:
        if isinstance(action, (CreateLoadBalancer, DeleteLoadBalancer, CreateListener, ModifyListener, DeleteListener)):
            self._clb(action)
        elif isinstance(action, (PatchService, SetIngress)):
            self._cluster(action)
        elif isinstance(action, (IndexSelector, UnindexSelector, RecordService, ForgetService, ForgetBinding)):
            self._store(action)
        elif isinstance(action, ReleasePods):
            outcome = flip_pods(self.deps, action.pods, self.rec)
            self.released = sum(1 for item in outcome if item.get("status") == "True")
        elif isinstance(action, EmitEvent):
            emit(self.deps, self.rec, action.regarding, type=action.type, reason=action.reason, message=action.message)
        elif isinstance(action, ReportRemoved):
            if action.removed or self.released:
                message = (
                    f"removed {', '.join(action.removed) or 'no CLB resources'}; released {self.released} Pod gate(s)"
                )
                emit(
                    self.deps, self.rec, action.regarding, type="Normal", reason="DirectAccessRemoved", message=message
                )
        elif isinstance(action, FollowUp):
            follow_up(self.deps, self.rec, action.request)

    def _clb(
        self, action: CreateLoadBalancer | DeleteLoadBalancer | CreateListener | ModifyListener | DeleteListener
    ) -> None:
        clb, rec, why = self.clb, self.rec, action.reason
        if isinstance(action, CreateLoadBalancer):
            spec = action.spec
            internal = spec.internal_subnet_id is not None
            created = rec.do("create_load_balancer", partial(clb.create_load_balancer, spec), service=self.service,
                             internal=internal, reason=why)  # fmt: skip
            self.created = created
        elif isinstance(action, DeleteLoadBalancer):
            rec.do(
                "delete_load_balancer", partial(clb.delete_load_balancer, action.lb_id), lb_id=action.lb_id, reason=why
            )
        elif isinstance(action, CreateListener):
            s = action.spec
            rec.do("create_listener", partial(clb.create_listener, action.lb_id, s), lb_id=action.lb_id, port=s.port,
                   protocol=s.protocol, reason=why)  # fmt: skip
        elif isinstance(action, ModifyListener):
            modify = partial(clb.modify_listener, action.lb_id, action.listener_id, action.spec)
            rec.do("modify_listener", modify, lb_id=action.lb_id, listener_id=action.listener_id,
                   changed=action.changed, reason=why)  # fmt: skip
        else:
            delete = partial(clb.delete_listener, action.lb_id, action.listener_id)
            rec.do("delete_listener", delete, lb_id=action.lb_id, listener_id=action.listener_id, reason=why)

    def _cluster(self, action: PatchService | SetIngress) -> None:
        cluster, key, rec = self.deps.require_cluster(), self.key, self.rec
        if isinstance(action, PatchService):
            patch = partial(
                cluster.patch_service_metadata,
                key.namespace,
                key.name,
                annotations=action.annotations or None,
                add_finalizers=action.add_finalizers,
                remove_finalizers=action.remove_finalizers,
            )
            where = {"lb_id": action.annotations[LB_ID_ANNOTATION]} if action.action == "annotate_lb_id" else {}
            rec.do(action.action, patch, **(where or {"service": self.service}), reason=action.reason)
            return
        if action.action == "clear_ingress":
            clear = partial(cluster.set_service_load_balancer_status, key.namespace, key.name, [])
            rec.do("clear_ingress", clear, service=self.service, reason=action.reason)
            return
        ips = action.ips
        if ips is None and self.created is not None:  # the new CLB's VIPs, where they differ from the status
            ips = list(self.created.vips)
            if not ips or sorted(ips) == sorted(action.current):
                return
        write = partial(cluster.set_service_load_balancer_status, key.namespace, key.name, ips or [])
        shown = ",".join(ips) if ips is not None else f"the VIPs of CLB {NEW_LB}"
        rec.do("set_ingress", write, ips=shown, reason=action.reason)

    def _store(self, action: IndexSelector | UnindexSelector | RecordService | ForgetService | ForgetBinding) -> None:
        store, rec, now, key = self.deps.store, self.rec, self.deps.clock.now(), self.key
        if isinstance(action, ForgetBinding):
            b = action.binding
            forget = partial(store.delete_binding, b.lb_id, b.listener_id, b.pod_uid)
            rec.do("forget_binding", forget, pod=f"{b.namespace}/{b.pod_name}", listener_id=b.listener_id,
                   reason=action.reason)  # fmt: skip
        elif isinstance(action, IndexSelector):
            rec.do(
                "index_selector", partial(store.put_selector, action.entry), service=self.service, reason=action.reason
            )
        elif isinstance(action, UnindexSelector):
            unindex = partial(store.delete_selector, key.namespace, key.name)
            rec.do("unindex_selector", unindex, service=self.service, reason=action.reason)
        elif isinstance(action, RecordService):
            put = partial(store.kv_set, service_record_key(key), action.record.model_dump_json(), ttl_s=None, now=now)
            rec.do("record_service", put, service=self.service, reason=action.reason)
        else:
            rec.do("forget_service", partial(store.kv_delete, service_record_key(key)), service=self.service,
                   reason=action.reason)  # fmt: skip
