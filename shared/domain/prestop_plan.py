"""The prestop step as data: when a terminating Pod's preStop call is held, answered, and warned about.

`shared/steps/prestop.py` observes once per call what `plan_prestop` needs (the Pod found by its prestop
id, its deletion deadline, the clock), and once per poll of a held call what `plan_drain_poll` needs (the
Pod's binding records, the time waited). Both are pure and return a `PrestopPlan` of typed actions, each
with its reason: `Hold` (poll again after `sleep_s`), `Release` (answer the kubelet with a status) and
`WarnPod` (a Warning Event on the Pod: its grace period is too short for the drain, or it ended before
the drain did). The hold window is the Pod's deletion deadline minus the `SIGTERM_RESERVE_S` the kubelet
keeps for SIGTERM, never more than `max_hold_s`; "drained" is `termination.drain_state`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.domain.models import BindingRecord, ObjectRef, PodInfo
from shared.domain.termination import SIGTERM_RESERVE_S, drain_state, required_grace_s

PrestopStatus = Literal["drained", "not-bound", "not-terminating", "not-found", "deadline"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PrestopLimits(_Frozen):
    """The settings a hold obeys."""

    drain_budget_s: float = Field(description="deletion -> weight 0 everywhere -> connections drained, expected")
    linger_s: float = Field(description="how long weight 0 must hold before the Pod counts as drained")
    max_hold_s: float = Field(description="the longest any call is held")
    poll_s: float = Field(description="how often a held call re-reads the binding records")


class PrestopSnapshot(_Frozen):
    """What a prestop call observed before holding: the Pod carrying the prestop id (None: none or several)."""

    pod: PodInfo | None
    deletion_deadline: float | None = Field(description="when the grace period ends (epoch s); None: not deleting")
    now: float
    limits: PrestopLimits
    bindings: list[BindingRecord] = Field(default_factory=list, description="the Pod's binding records")


class DrainSnapshot(_Frozen):
    """What one poll of a held call observed."""

    pod: ObjectRef
    bindings: list[BindingRecord]
    now: float
    waited_s: float
    hold_s: float = Field(description="how long this call may be held in all (from its `plan_prestop`)")
    limits: PrestopLimits


class Hold(_Frozen):
    kind: Literal["hold"] = "hold"
    sleep_s: float = Field(description="until the next poll; 0 for the first")
    reason: str


class Release(_Frozen):
    """Answer the kubelet, which then sends SIGTERM."""

    kind: Literal["release"] = "release"
    status: PrestopStatus
    message: str


class WarnPod(_Frozen):
    kind: Literal["warn_pod"] = "warn_pod"
    event: Literal["GracePeriodTooShort", "DrainIncomplete"]
    message: str
    reason: str


class StartDrain(_Frozen):
    """Ask the unbind step for this Pod now: the kubelet's preStop call is the earliest sign that a Pod is
    leaving (its deletion reaches us through the audit webhook and the relay, batched, a second or more
    later). A hint like any event: the step re-reads the Pod and the CLB, and a later one for the same Pod
    finds the drain started and writes nothing."""

    kind: Literal["start_drain"] = "start_drain"
    pod_uid: str
    reason: str


PrestopAction = Annotated[Hold | Release | WarnPod | StartDrain, Field(discriminator="kind")]


class PrestopPlan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pod: ObjectRef | None = Field(default=None, description="the Pod held for; None: no Pod found")
    hold_s: float = Field(default=0.0, description="how long the call may be held in all")
    actions: list[PrestopAction] = Field(default_factory=list)

    @property
    def pod_name(self) -> str:
        return f"{self.pod.namespace}/{self.pod.name}" if self.pod else ""

    @property
    def release(self) -> Release | None:
        return next((action for action in self.actions if isinstance(action, Release)), None)

    @property
    def hold(self) -> Hold | None:
        return next((action for action in self.actions if isinstance(action, Hold)), None)


def plan_prestop(snap: PrestopSnapshot) -> PrestopPlan:
    """Answer at once for a Pod that is gone or not being deleted (a container restart also runs preStop);
    else hold, warning first when the grace period left cannot hold the drain."""
    pod = snap.pod
    if pod is None:
        return PrestopPlan(
            actions=[Release(status="not-found", message="no Pod carries this prestop id (already gone?)")]
        )
    ref = ObjectRef(kind="Pod", namespace=pod.namespace, name=pod.name, uid=pod.uid)
    if snap.deletion_deadline is None:
        message = "the Pod is not being deleted (a container restart?)"
        return PrestopPlan(pod=ref, actions=[Release(status="not-terminating", message=message)])
    left_s, limits = snap.deletion_deadline - snap.now, snap.limits
    plan = PrestopPlan(pod=ref, hold_s=min(left_s - SIGTERM_RESERVE_S, limits.max_hold_s))
    if left_s < limits.drain_budget_s + SIGTERM_RESERVE_S:
        message = (
            f"only {max(left_s, 0):.0f} s of grace period were left when the drain wait started; the drain needs "
            f"about {limits.drain_budget_s:g} s plus {SIGTERM_RESERVE_S:g} s for SIGTERM: set "
            f"terminationGracePeriodSeconds to at least {required_grace_s(limits.drain_budget_s)}"
        )
        why = "the kubelet sends SIGTERM when the grace period ends, drained or not"
        plan.actions.append(WarnPod(event="GracePeriodTooShort", message=message, reason=why))
    if any(b.state in ("registering", "registered") for b in snap.bindings):
        plan.actions.append(StartDrain(pod_uid=pod.uid, reason="the Pod terminates and still takes traffic"))
    plan.actions.append(Hold(sleep_s=0.0, reason="the Pod terminates: hold until its CLB weight is 0 and drained"))
    return plan


def plan_drain_poll(snap: DrainSnapshot) -> PrestopPlan:
    """Release once drained (or never bound); at the end of the hold window release with a Warning; else
    poll again, never sleeping past the window."""
    plan = PrestopPlan(pod=snap.pod, hold_s=snap.hold_s)
    verdict, why = drain_state(snap.bindings, now=snap.now, linger_s=snap.limits.linger_s)
    if verdict != "waiting":
        plan.actions.append(Release(status=verdict, message=why))
    elif snap.waited_s >= snap.hold_s:
        message = (
            f"the grace period ended before the drain did ({why}); set terminationGracePeriodSeconds to at "
            f"least {required_grace_s(snap.limits.drain_budget_s)} or check the unbind step"
        )
        why_warn = "the Pod gets SIGTERM while the CLB may still send it requests"
        plan.actions.append(WarnPod(event="DrainIncomplete", message=message, reason=why_warn))
        plan.actions.append(Release(status="deadline", message=message))
    else:
        sleep_s = min(snap.limits.poll_s, max(snap.hold_s - snap.waited_s, 0.0))
        plan.actions.append(Hold(sleep_s=sleep_s, reason=why))
    return plan
