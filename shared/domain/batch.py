"""The per-CLB batch as data: the snapshot it observes, the typed plan it returns, and `plan_batch`.

`shared/steps/clb_batch.py` observes a `BatchSnapshot` (everything the batch needs, read once), calls
`plan_batch` (pure: no I/O, no clock) and hands the `BatchPlan` to one applier; a dry run stops after
planning and shows the plan, so `clb-direct plan` prints exactly what the batch would do. Every action
carries its reason. The unbind half (drain, then deregister; the one drain path, also used for extra
targets a live Pod still holds) is in `batch_unbind.py`, the bind half (register, re-weight, limits,
extra targets) in `batch_bind.py`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.domain.backends import DesiredTarget
from shared.domain.clb_work import ClbWork
from shared.domain.models import (
    EXISTED_LB_ANNOTATION,
    LB_ID_ANNOTATION,
    BindingRecord,
    Listener,
    ObjectKey,
    ObjectRef,
    PodInfo,
    ServiceInfo,
    StepRequest,
    Target,
)

TargetKey = tuple[str, str, int]
ACTIVE_STATES = ("registering", "registered")


def service_lb_id(service: ServiceInfo) -> str | None:
    """The CLB a Service uses: the adopted one, else the one the service step wrote back."""
    return service.annotations.get(EXISTED_LB_ANNOTATION) or service.annotations.get(LB_ID_ANNOTATION)


def target_key(t: Target | BindingRecord | DesiredTarget) -> TargetKey:
    return (t.listener_id, t.ip, t.port)


def describe_binding(b: BindingRecord) -> str:
    return f"{b.namespace}/{b.pod_name}@{b.ip}:{b.port}/{b.listener_id}"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BatchSnapshot(_Frozen):
    """What one batch for one CLB observed, read once before planning."""

    lb_id: str
    now: float
    backend_quota: int
    default_weight: int
    drain_timeout_s: float
    bind_services: list[str] = Field(default_factory=list, description="Services (ns/name) the batch binds")
    bind_pods: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Services bound only for these Pods (ns/name): their other Pods and targets are left alone",
    )
    unbind_uids: list[str] = Field(default_factory=list, description="Pod UIDs the batch unbinds")
    actual: list[Target] = Field(default_factory=list, description="the CLB's targets")
    listeners: list[Listener] = Field(default_factory=list)
    bindings: list[BindingRecord] = Field(default_factory=list, description="binding records of this CLB")
    bound_elsewhere: frozenset[str] = Field(default=frozenset(), description="UIDs with bindings on other CLBs")
    services: dict[str, ServiceInfo | None] = Field(default_factory=dict, description="live Services by ns/name")
    service_pods: dict[str, list[PodInfo]] = Field(default_factory=dict, description="Pods listed per Service")
    scoped_pods: dict[str, list[PodInfo]] = Field(
        default_factory=dict, description="per Service in bind_pods: those of its Pods that it still selects"
    )
    pods: dict[str, PodInfo | None] = Field(default_factory=dict, description="Pods looked up by ns/name")
    ip_holders: dict[str, list[PodInfo]] = Field(default_factory=dict, description="Pods holding an IP")
    namespace_services: dict[str, list[ServiceInfo]] = Field(
        default_factory=dict, description="direct-access Services per namespace (of IP holders)"
    )
    cluster_config: dict[str, str] = Field(default_factory=dict)
    limits: dict[str, str] = Field(default_factory=dict, description="recorded use-limit message per Pod UID")
    true_gates: frozenset[str] = Field(default=frozenset(), description="UIDs whose gate is recorded True")


class ClbAction(_Frozen):
    kind: Literal["clb"] = "clb"
    action: Literal[
        "register_targets", "set_target_weights", "drain_targets", "deregister_targets",
        "drain_extra_targets", "deregister_extra_targets",
    ]  # fmt: skip
    targets: list[Target]
    described: list[str]
    reason: str
    service: str | None = None


class PutBinding(_Frozen):
    kind: Literal["record_binding"] = "record_binding"
    binding: BindingRecord
    reason: str


class ForgetBinding(_Frozen):
    kind: Literal["forget_binding"] = "forget_binding"
    binding: BindingRecord
    reason: str


class PodState(_Frozen):
    """The KV state kept per Pod: its use-limit message, and (forget) its gate and limit keys."""

    kind: Literal["record_limit", "clear_limit", "forget_pod_state"]
    pod_uid: str
    pod: str
    message: str = ""
    reason: str


class QuotaWait(_Frozen):
    """Bind work the backend quota refused waits on the CLB (`park_for_quota`); a deregistration sends
    every waiting item back to the CLB's queue (`release_quota_waiters`), where the writer takes it next."""

    kind: Literal["park_for_quota", "release_quota_waiters"]
    items: list[ClbWork] = Field(default_factory=list)
    reason: str


class EmitEvent(_Frozen):
    kind: Literal["emit_event"] = "emit_event"
    regarding: ObjectRef
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


class FollowUp(_Frozen):
    """Another step, invoked now or (with `not_before`) scheduled for later."""

    kind: Literal["follow_up"] = "follow_up"
    request: StepRequest


class Timeline(_Frozen):
    """Stage marks for the per-Pod timelines, stamped by the applier after the CLB calls before them."""

    kind: Literal["timeline"] = "timeline"
    stage: Literal["registered", "deletion_seen", "weight_zero", "deregistered"]
    bindings: list[BindingRecord]


Action = Annotated[
    ClbAction | PutBinding | ForgetBinding | PodState | QuotaWait | EmitEvent | FollowUp | Timeline,
    Field(discriminator="kind"),
]


class BatchPlan(BaseModel):
    """Everything one batch will do, in order, plus the summary the step reports."""

    model_config = ConfigDict(extra="forbid")

    lb_id: str
    actions: list[Action] = Field(default_factory=list)
    outcome: dict[str, Any] = Field(default_factory=dict)
    # The binding records as they will be after the actions so far (the bind half plans on top of the
    # unbind half's effects); not part of the plan's output.
    view: dict[tuple[str, str], BindingRecord] = Field(default_factory=dict, exclude=True)

    def add(self, action: Action) -> None:
        self.actions.append(action)
        if isinstance(action, PutBinding):
            self.view[(action.binding.listener_id, action.binding.pod_uid)] = action.binding
        elif isinstance(action, ForgetBinding):
            self.view.pop((action.binding.listener_id, action.binding.pod_uid), None)

    def report(self, key: str, *values: str) -> None:
        if values:
            self.outcome.setdefault(key, []).extend(values)

    def event(self, regarding: ObjectRef, type: Literal["Normal", "Warning"], reason: str, message: str) -> None:
        self.add(EmitEvent(regarding=regarding, type=type, reason=reason, message=message))

    def follow_up(self, request: StepRequest) -> None:
        self.add(FollowUp(request=request))


def service_ref(service: ServiceInfo) -> ObjectRef:
    return ObjectRef(kind="Service", namespace=service.namespace, name=service.name, uid=service.uid)


def pod_ref(pod: PodInfo) -> ObjectRef:
    return ObjectRef(kind="Pod", namespace=pod.namespace, name=pod.name, uid=pod.uid)


def plan_batch(snap: BatchSnapshot, *, correlation_id: str | None) -> BatchPlan:
    """The batch's plan: unbind first (what it deregisters frees quota), then bind, then one flip."""
    from shared.domain.batch_bind import plan_binds
    from shared.domain.batch_unbind import plan_unbinds

    plan = BatchPlan(lb_id=snap.lb_id, view={(b.listener_id, b.pod_uid): b for b in snap.bindings})
    actual = list(snap.actual)
    if snap.unbind_uids:
        removed = plan_unbinds(snap, plan, correlation_id=correlation_id)
        actual = [t for t in actual if target_key(t) not in removed]
    flip: dict[str, ObjectKey] = {}
    if snap.bind_services:
        flip = plan_binds(snap, plan, actual, correlation_id=correlation_id)
    if flip:
        plan.follow_up(
            StepRequest(
                step="flip",
                pods=list(flip.values()),
                lb_id=snap.lb_id,
                reason="targets registered",
                correlation_id=correlation_id,
            )
        )
    return plan
