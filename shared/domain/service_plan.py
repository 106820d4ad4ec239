"""The service step as data: the snapshot it observes, the typed plan it returns, and `plan_service`.

`shared/steps/service.py` observes a `ServiceSnapshot` (the Service, its TkeServiceConfig, its CLB and
listeners, the binding records and, for a teardown, what an earlier run recorded), calls `plan_service`
(pure: no I/O, no clock) and hands the `ServicePlan` to one applier; a dry run records the plan without
executing it and returns it, so `clb-direct plan` prints exactly what the step would do. Every action
carries its reason. A CLB the plan creates is named `NEW_LB` in the actions after its creation; the
applier puts the created CLB's id in its place (`with_lb_id`). A refusal (bad TkeServiceConfig, an
adopted CLB that does not exist, a recorded CLB that is not ours) is part of the plan: the actions
before it (a Warning Event, the finalizer) are applied, then the step fails with its error.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.domain.batch import EmitEvent, FollowUp, ForgetBinding, service_ref
from shared.domain.errors import ClbDirectError, ConfigError, LimitExceeded, NotFound, PermanentError
from shared.domain.gate import REASON_PORT_CONFLICT
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
    BindingRecord,
    Listener,
    ListenerSpec,
    LoadBalancerInfo,
    LoadBalancerSpec,
    ObjectKey,
    ObjectRef,
    PodInfo,
    SelectorEntry,
    ServiceInfo,
    StepRequest,
)
from shared.domain.termination import admission_annotations
from shared.domain.tke_service_config import TkeServiceConfig

NEW_LB = "<new>"  # the CLB this plan creates, until the applier knows its id


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServiceRecord(BaseModel):
    """What the service step recorded for a Service in the store: the CLB it used and whether it was adopted."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    lb_id: str | None = None
    adopted: bool = False
    uid: str | None = None


class ServiceSnapshot(_Frozen):
    """What one service step observed for one Service, read once before planning."""

    key: ObjectKey
    service: ServiceInfo | None = Field(description="the live Service; None once it is gone")
    now: float
    cluster_id: str
    region: str
    vpc_id: str | None = None
    version_problem: str | None = Field(default=None, description="why this cluster version is not supported")
    config: TkeServiceConfig | None = None
    config_problem: str | None = Field(default=None, description="why the named TkeServiceConfig is unusable")
    lb: LoadBalancerInfo | None = Field(default=None, description="the Service's CLB, when one exists")
    adopted: bool = Field(default=False, description="the CLB is the adopted `tke-existed-lbid` one")
    listeners: list[Listener] = Field(default_factory=list, description="the CLB's listeners")
    bindings: list[BindingRecord] = Field(
        default_factory=list, description="binding records: of the CLB (ensure), of the Service (teardown)"
    )
    indexed: SelectorEntry | None = Field(default=None, description="the Service's selector index entry (ensure)")
    record: ServiceRecord | None = Field(default=None, description="what an earlier run recorded (teardown)")
    selector: dict[str, str] = Field(default_factory=dict, description="the selector whose Pods a teardown releases")
    pods: list[PodInfo] = Field(default_factory=list, description="the Pods that selector selects (teardown)")


class CreateLoadBalancer(_Frozen):
    kind: Literal["create_load_balancer"] = "create_load_balancer"
    spec: LoadBalancerSpec
    reason: str


class DeleteLoadBalancer(_Frozen):
    kind: Literal["delete_load_balancer"] = "delete_load_balancer"
    lb_id: str
    reason: str


class CreateListener(_Frozen):
    kind: Literal["create_listener"] = "create_listener"
    lb_id: str
    spec: ListenerSpec
    reason: str


class ModifyListener(_Frozen):
    kind: Literal["modify_listener"] = "modify_listener"
    lb_id: str
    listener_id: str
    spec: ListenerSpec
    changed: list[str]
    reason: str


class DeleteListener(_Frozen):
    kind: Literal["delete_listener"] = "delete_listener"
    lb_id: str
    listener_id: str
    reason: str


class PatchService(_Frozen):
    """A metadata patch of the Service: its cleanup finalizer or its CLB id annotation."""

    kind: Literal["patch_service"] = "patch_service"
    action: Literal["add_finalizer", "remove_finalizer", "annotate_lb_id", "remove_lb_id"]
    annotations: dict[str, str | None] = Field(default_factory=dict)
    add_finalizers: list[str] = Field(default_factory=list)
    remove_finalizers: list[str] = Field(default_factory=list)
    reason: str


class SetIngress(_Frozen):
    """`status.loadBalancer.ingress` of the Service. `ips=None`: the VIPs of the CLB created above, written
    where they differ from `current` (the status as observed)."""

    kind: Literal["set_ingress"] = "set_ingress"
    action: Literal["set_ingress", "clear_ingress"]
    ips: list[str] | None
    current: list[str] = Field(default_factory=list)
    reason: str


class IndexSelector(_Frozen):
    kind: Literal["index_selector"] = "index_selector"
    entry: SelectorEntry
    before_clb: bool = False
    reason: str


class UnindexSelector(_Frozen):
    kind: Literal["unindex_selector"] = "unindex_selector"
    reason: str


class RecordService(_Frozen):
    kind: Literal["record_service"] = "record_service"
    record: ServiceRecord
    reason: str


class ForgetService(_Frozen):
    kind: Literal["forget_service"] = "forget_service"
    reason: str


class ReleasePods(_Frozen):
    """Re-decide the gates of these Pods (rule 8): with the Service's direct access gone, the flip releases them."""

    kind: Literal["release_pods"] = "release_pods"
    pods: list[PodInfo]
    reason: str


class ReportRemoved(_Frozen):
    """The `DirectAccessRemoved` Event, emitted when something was removed or a gate released (the count of
    released gates is known only once the release above has run)."""

    kind: Literal["report_removed"] = "report_removed"
    regarding: ObjectRef
    removed: list[str]
    reason: str


class Refusal(_Frozen):
    """The error the step ends with once the actions before it are applied."""

    error: Literal["LimitExceeded", "ConfigError", "NotFound", "PermanentError"]
    message: str

    def exception(self) -> ClbDirectError:
        kinds: dict[str, type[PermanentError]] = {
            "LimitExceeded": LimitExceeded,
            "ConfigError": ConfigError,
            "NotFound": NotFound,
            "PermanentError": PermanentError,
        }
        return kinds[self.error](self.message)


ServiceAction = Annotated[
    CreateLoadBalancer | DeleteLoadBalancer | CreateListener | ModifyListener | DeleteListener | PatchService
    | SetIngress | IndexSelector | UnindexSelector | RecordService | ForgetService | ForgetBinding | ReleasePods
    | EmitEvent | ReportRemoved | FollowUp,
    Field(discriminator="kind"),
]  # fmt: skip
CLB_WRITES = (CreateLoadBalancer, DeleteLoadBalancer, CreateListener, ModifyListener, DeleteListener)


class ServicePlan(BaseModel):
    """Everything one service step will do for one Service, in order, plus the summary the step reports."""

    model_config = ConfigDict(extra="forbid")

    service: str
    actions: list[ServiceAction] = Field(default_factory=list)
    refusal: Refusal | None = None
    outcome: dict[str, Any] = Field(default_factory=dict)

    def add(self, action: ServiceAction) -> None:
        self.actions.append(action)

    def event(self, regarding: ObjectRef, type: Literal["Normal", "Warning"], reason: str, message: str) -> None:
        self.add(EmitEvent(regarding=regarding, type=type, reason=reason, message=message))

    def refuse(self, regarding: ObjectRef, reason: str, error: Any, message: str) -> ServicePlan:
        """A Warning Event with `reason`, then the step fails with `error` (a `Refusal.error` name)."""
        self.event(regarding, "Warning", reason, message)
        self.refusal = Refusal(error=error, message=message)
        return self

    @property
    def writes_clb(self) -> bool:
        return any(isinstance(action, CLB_WRITES) for action in self.actions)


def with_lb_id(action: ServiceAction, lb_id: str) -> ServiceAction:
    """`action` with the created CLB's id wherever the plan named it `NEW_LB` (ids, annotations, messages)."""
    text = action.model_dump_json()
    if NEW_LB not in text:
        return action
    return type(action).model_validate_json(text.replace(NEW_LB, lb_id))


# ------------------------------------------------------------------------------------------- observing
def uses_direct_access(service: ServiceInfo | None) -> bool:
    """Ensure (True) or tear down (False)."""
    return service is not None and service.is_direct_access


def owner_tags(cluster_id: str, key: ObjectKey) -> dict[str, str]:
    """The tags of every CLB clb-direct creates, by which a lost create is found again."""
    return {OWNER_TAG_CLUSTER: cluster_id, OWNER_TAG_CREATED_BY: "yes", OWNER_TAG_SERVICE: str(key)}


def is_service_lb(info: LoadBalancerInfo, key: ObjectKey) -> bool:
    """The CLB was created for this Service (its id annotation alone proves nothing: it can be edited)."""
    return info.tags.get(OWNER_TAG_SERVICE) == str(key)


def teardown_target(key: ObjectKey, service: ServiceInfo | None, record: ServiceRecord | None) -> tuple[str, bool]:
    """(the CLB a teardown cleans up, "" for none; whether it was adopted)."""
    if service is not None and record is not None and record.uid not in (None, service.uid):
        record = None  # left by an older Service object of the same name: not ours to act on
    annotations = service.annotations if service else {}
    lb_id = (record.lb_id if record else None) or annotations.get(LB_ID_ANNOTATION) or ""
    adopted = bool(record and record.adopted) or EXISTED_LB_ANNOTATION in annotations
    return ("" if lb_id == NEW_LB else lb_id), adopted


# ------------------------------------------------------------------------------------------- planning
def plan_service(snap: ServiceSnapshot, *, correlation_id: str | None = None) -> ServicePlan:
    """Ensure a direct-access Service's CLB, listeners and records; else tear down what was made for it."""
    if snap.service is not None and uses_direct_access(snap.service):
        return _plan_ensure(snap, snap.service, correlation_id)
    return _plan_teardown(snap)


def _plan_ensure(snap: ServiceSnapshot, service: ServiceInfo, correlation_id: str | None) -> ServicePlan:
    plan, ref = ServicePlan(service=str(service.key)), service_ref(service)
    if snap.version_problem:
        return plan.refuse(ref, "UnsupportedClusterVersion", "LimitExceeded", snap.version_problem)
    if snap.config_problem:  # checked before any change: a bad config changes nothing
        return plan.refuse(ref, "InvalidTkeServiceConfig", "ConfigError", snap.config_problem)
    if SERVICE_FINALIZER not in service.finalizers:
        why = "deleting the Service waits until what clb-direct made for it is removed"
        plan.add(PatchService(action="add_finalizer", add_finalizers=[SERVICE_FINALIZER], reason=why))
    _plan_index_before_clb(plan, snap, service)
    if snap.adopted and snap.lb is None:
        adopted_id = service.annotations.get(EXISTED_LB_ANNOTATION)
        message = (
            f"CLB {adopted_id} named by {EXISTED_LB_ANNOTATION} on Service {service.key} does not exist in "
            f"region {snap.region}; fix the annotation"
        )
        return plan.refuse(ref, "LoadBalancerNotFound", "NotFound", message)
    lb_id = snap.lb.lb_id if snap.lb else NEW_LB
    if snap.lb is None:
        _plan_create(plan, snap, service)
    listeners = plan_listeners(
        desired_listeners(service, snap.config),
        snap.listeners,
        namespace=service.namespace,
        service=service.name,
        owns_lb=not snap.adopted,
    )
    _plan_listener_writes(plan, lb_id, listeners)
    _plan_port_conflicts(plan, service, lb_id, listeners)
    _plan_forget_gone(plan, snap, listeners)
    if snap.config is not None and (listeners.update or listeners.create):
        message = f"applied TkeServiceConfig {snap.config.name} to listeners of CLB {lb_id}"
        plan.event(ref, "Normal", "AppliedTkeServiceConfig", message)
    _plan_write_back(plan, service, lb_id, snap.lb)
    _plan_records(plan, snap, service, lb_id)
    bind = StepRequest(
        step="bind", services=[service.key], lb_id=lb_id, reason="service ensured", correlation_id=correlation_id
    )
    plan.add(FollowUp(request=bind))
    counts = {
        "created": len(listeners.create),
        "updated": len(listeners.update),
        "deleted": len(listeners.delete),
        "conflicts": len(listeners.conflicts),
    }
    plan.outcome = {"service": str(service.key), "lb_id": lb_id, "adopted": snap.adopted, "listeners": counts}
    return plan


def _plan_index_before_clb(plan: ServicePlan, snap: ServiceSnapshot, service: ServiceInfo) -> None:
    """Admission gates Pods by the selector index: write this Service's entry before the CLB is created.

    Creating a CLB takes seconds (and may fail and be retried); a Pod created meanwhile would otherwise be
    admitted without the gate, which can never be added afterwards. Written only when missing or changed.
    An adopted CLB is only described (fast); a missing one must not gate Pods that nothing will serve,
    so that entry is written at the end only.
    """
    if snap.adopted:
        return
    entry = _selector_entry(service, service.annotations.get(LB_ID_ANNOTATION), snap.now)
    current = snap.indexed
    if current is not None and (current.selector, current.annotations) == (entry.selector, entry.annotations):
        return
    why = "before the CLB: admission gates the Pods created while it is being made"
    plan.add(IndexSelector(entry=entry, before_clb=True, reason=why))


def _selector_entry(service: ServiceInfo, lb_id: str | None, now: float) -> SelectorEntry:
    return SelectorEntry(
        namespace=service.namespace,
        service=service.name,
        selector=service.selector,
        lb_id=lb_id,
        updated_at=now,
        annotations=admission_annotations(service.annotations),
    )


def _plan_create(plan: ServicePlan, snap: ServiceSnapshot, service: ServiceInfo) -> None:
    subnet = service.annotations.get(INTERNAL_SUBNET_ANNOTATION)
    spec = LoadBalancerSpec(
        name=f"clb-direct-{service.namespace}-{service.name}"[:60],
        internal_subnet_id=subnet,
        vpc_id=snap.vpc_id,
        tags=owner_tags(snap.cluster_id, service.key),
        # One token per Service UID: a retried create after a lost response returns the same CLB.
        client_token=f"clb-direct-{service.uid}"[:64],
    )
    plan.add(CreateLoadBalancer(spec=spec, reason="no CLB is annotated, adopted or tagged for this Service"))
    message = f"created CLB {NEW_LB} ({'private' if subnet else 'public'}) for direct access"
    plan.event(service_ref(service), "Normal", "EnsuredLoadBalancer", message)


def _plan_listener_writes(plan: ServicePlan, lb_id: str, listeners: ListenerPlan) -> None:
    for spec in listeners.create:
        plan.add(CreateListener(lb_id=lb_id, spec=spec, reason=f"Service port {spec.protocol}:{spec.port} has none"))
    for listener, spec, diffs in listeners.update:
        why = f"differs from the Service / TkeServiceConfig in {', '.join(diffs)}"
        plan.add(ModifyListener(lb_id=lb_id, listener_id=listener.listener_id, spec=spec, changed=diffs, reason=why))
    for listener in listeners.delete:
        why = f"port {listener.protocol}:{listener.port} is no longer a port of the Service"
        plan.add(DeleteListener(lb_id=lb_id, listener_id=listener.listener_id, reason=why))


def _plan_port_conflicts(plan: ServicePlan, service: ServiceInfo, lb_id: str, listeners: ListenerPlan) -> None:
    """A port of an adopted CLB held by a listener we did not create: a Warning, and nothing written there."""
    for spec, listener in listeners.conflicts:
        message = port_conflict_text(spec.protocol, spec.port, lb_id, listener)
        plan.event(service_ref(service), "Warning", REASON_PORT_CONFLICT, message)
    if listeners.conflicts:
        # No target is registered behind a conflicting port, so no bind asks for a flip: ask for one here,
        # so the selected Pods' gates say why they are not ready (and a fail-open deadline gets scheduled).
        flip = StepRequest(step="flip", services=[service.key], lb_id=lb_id, reason="listener port conflict")
        plan.add(FollowUp(request=flip))


def _plan_forget_gone(plan: ServicePlan, snap: ServiceSnapshot, listeners: ListenerPlan) -> None:
    """Forget the binding records of every listener the CLB will no longer have: deleted by this plan, or
    earlier by a run that died before it forgot them (its retry no longer plans that deletion, so keying on
    the plan alone would keep those records for ever). The records were read before the listeners, so a
    record always names a listener that existed when the listeners were read, or was deleted since."""
    live = {listener.listener_id for listener in snap.listeners} - {d.listener_id for d in listeners.delete}
    for binding in snap.bindings:
        if binding.listener_id not in live:
            plan.add(ForgetBinding(binding=binding, reason="its listener is gone"))


def _plan_write_back(plan: ServicePlan, service: ServiceInfo, lb_id: str, lb: LoadBalancerInfo | None) -> None:
    """The CLB id annotation and `status.loadBalancer` on the Service, where they differ."""
    if service.annotations.get(LB_ID_ANNOTATION) != lb_id:
        why = "tells the bind step and the user which CLB serves the Service"
        plan.add(PatchService(action="annotate_lb_id", annotations={LB_ID_ANNOTATION: lb_id}, reason=why))
    if lb is None:
        why = "the VIPs of the CLB created above"
        plan.add(SetIngress(action="set_ingress", ips=None, current=list(service.ingress_ips), reason=why))
    elif lb.vips and sorted(lb.vips) != sorted(service.ingress_ips):
        plan.add(SetIngress(action="set_ingress", ips=list(lb.vips), reason="the CLB's VIPs differ from the status"))


def _plan_records(plan: ServicePlan, snap: ServiceSnapshot, service: ServiceInfo, lb_id: str) -> None:
    """The selector index entry (for admission) and the record of what the service step created."""
    entry = _selector_entry(service, lb_id, snap.now)
    plan.add(IndexSelector(entry=entry, reason="admission gates the Pods this selector selects"))
    record = ServiceRecord(lb_id=lb_id, adopted=snap.adopted, uid=service.uid)
    plan.add(RecordService(record=record, reason="a teardown deletes only what was created for this Service"))


def _plan_teardown(snap: ServiceSnapshot) -> ServicePlan:
    """Delete what the service step created, release the Pods, drop the finalizer. Safe to repeat."""
    key, service = snap.key, snap.service
    plan = ServicePlan(service=str(key))
    removed = _plan_delete_owned(plan, snap)
    if plan.refusal is not None:
        return plan
    for binding in snap.bindings:
        plan.add(ForgetBinding(binding=binding, reason="its Service no longer uses direct access"))
    plan.add(UnindexSelector(reason="the Service no longer uses direct access"))
    plan.add(ForgetService(reason="nothing is left to tear down"))
    if snap.selector:
        plan.add(ReleasePods(pods=snap.pods, reason="their gates no longer wait for this Service's CLB (rule 8)"))
    if service is not None:
        annotations = service.annotations
        if LB_ID_ANNOTATION in annotations:
            why = "the Service no longer has a CLB of clb-direct"
            plan.add(PatchService(action="remove_lb_id", annotations={LB_ID_ANNOTATION: None}, reason=why))
        if service.ingress_ips and service.deletion_timestamp is None:
            plan.add(SetIngress(action="clear_ingress", ips=[], reason="the Service no longer has a CLB"))
        if SERVICE_FINALIZER in service.finalizers:
            why = "everything made for the Service is removed"
            plan.add(PatchService(action="remove_finalizer", remove_finalizers=[SERVICE_FINALIZER], reason=why))
        plan.add(ReportRemoved(regarding=service_ref(service), removed=removed, reason="tell the user"))
    plan.outcome = {"service": str(key), "torn_down": True, "deleted": removed}
    return plan


def _plan_delete_owned(plan: ServicePlan, snap: ServiceSnapshot) -> list[str]:
    """Delete the CLB when clb-direct created it for this Service, else only this Service's listeners on
    the adopted one; refuse when the recorded CLB's tags name another owner."""
    lb, key = snap.lb, snap.key
    if lb is None:
        return []
    if not snap.adopted and is_service_lb(lb, key) and lb.tags.get(OWNER_TAG_CLUSTER) == snap.cluster_id:
        plan.add(DeleteLoadBalancer(lb_id=lb.lb_id, reason=f"created by clb-direct for Service {key}"))
        return [f"CLB {lb.lb_id}"]
    if not snap.adopted:
        # Tags say someone else owns it: refuse rather than delete a CLB we cannot prove is ours.
        plan.refusal = Refusal(
            error="PermanentError",
            message=f"CLB {lb.lb_id} recorded for Service {key} is not tagged {OWNER_TAG_SERVICE}={key} in cluster "
            f"{snap.cluster_id}; not deleting it — remove it by hand if it is really unused",
        )
        return []
    removed = []
    for listener in snap.listeners:
        if is_owned_listener(listener, key.namespace, key.name):
            why = f"created by clb-direct for Service {key} on the adopted CLB"
            plan.add(DeleteListener(lb_id=lb.lb_id, listener_id=listener.listener_id, reason=why))
            removed.append(f"listener {listener.listener_id}")
    return removed
