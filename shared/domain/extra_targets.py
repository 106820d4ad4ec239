"""Extra targets: backends on a listener clb-direct manages that no Pod of its Service accounts for.

Pure planning called by the bind half of the batch plan (`shared/domain/batch_bind.py`), so every bind and every
reconcile pass also repairs drift in the removing direction: targets left after the store lost its
binding records, added by hand, or left by a crash or a lost event. A target on a managed listener is
*extra* when it is neither a desired backend nor claimed by an active binding record (registering,
registered, draining) of a live Pod; the registering record is written before the CLB call, so an
in-flight registration is never raced. A target that a live, eligible Pod selected by a direct-access
Service on this CLB needs (same listener, IP and resolved port; e.g. a reused IP) is never extra
(rule 1); use limits only stop new registrations, so they do not make a serving target extra either.
What happens to an extra target depends on who holds its IP now. No live Pod: deregister at once —
nothing in the cluster answers there, so there are no connections to drain (as `plan_unbind` does for a
Pod that is gone), and waiting would only keep black-holing traffic. A live Pod that is not a backend
here (unready, terminating, unselected, another port): drain to weight 0 first and deregister after the
drain timeout like any unbind, because the target may still carry that Pod's established connections;
the drained target is recorded as a draining binding of that Pod, so the unbind path finishes it.
Managed listeners are the ones serving the Service's ports on a CLB we created; on an adopted CLB only
the listeners the service step created for the Service (`listeners.is_owned_listener`), because an
adopted listener may carry someone else's backends.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from shared.domain.backends import ineligibility, resolve_target_port, selects
from shared.domain.listeners import is_owned_listener, listeners_for_service
from shared.domain.models import BindingRecord, Listener, PodInfo, ServiceInfo, Target

TargetKey = tuple[str, str, int]
CLAIMING_STATES = frozenset({"registering", "registered", "draining"})
# A Pod that has finished keeps its IP in status for a while, but nothing listens there any more.
_FINISHED_PHASES = ("Succeeded", "Failed")


def target_key(target: Target) -> TargetKey:
    return (target.listener_id, target.ip, target.port)


def managed_listener_ids(service: ServiceInfo, listeners: Sequence[Listener], *, adopted: bool) -> list[str]:
    """Listeners whose targets clb-direct may remove for this Service (see the module docstring)."""
    found: list[str] = []
    for _port, listener in listeners_for_service(service, listeners):
        if listener is None or listener.listener_id in found:
            continue
        if adopted and not is_owned_listener(listener, service.namespace, service.name):
            continue
        found.append(listener.listener_id)
    return found


def extra_candidates(
    actual: Iterable[Target], *, managed: Collection[str], desired: Iterable[TargetKey]
) -> list[Target]:
    """Targets on managed listeners that no desired backend accounts for (before checking claims)."""
    wanted = set(desired)
    return [t for t in actual if t.listener_id in managed and target_key(t) not in wanted]


def claiming_binding(
    target: Target, bindings: Iterable[BindingRecord], live_uids: Collection[str]
) -> BindingRecord | None:
    """The active binding of a live Pod that owns this target, if any (unbind then decides its fate)."""
    for binding in bindings:
        if (
            binding.state in CLAIMING_STATES
            and binding.pod_uid in live_uids
            and (binding.listener_id, binding.ip, binding.port) == target_key(target)
        ):
            return binding
    return None


def needed_by(
    target: Target, pods: Iterable[PodInfo], services: Iterable[ServiceInfo], listeners: Sequence[Listener]
) -> tuple[PodInfo, ServiceInfo] | None:
    """A live, eligible Pod holding the target's IP that a direct-access Service (on this CLB) needs there."""
    candidates = [p for p in pods if p.ip == target.ip and ineligibility(p) is None]
    for service in services:
        if not service.is_direct_access:
            continue
        for port, listener in listeners_for_service(service, listeners):
            if listener is None or listener.listener_id != target.listener_id:
                continue
            for pod in candidates:
                if (
                    pod.namespace == service.namespace
                    and selects(service.selector, pod.labels)
                    and resolve_target_port(port, pod) == target.port
                ):
                    return pod, service
    return None


ExtraKind = Literal["keep", "drain", "deregister"]


@dataclass(frozen=True)
class ExtraDecision:
    kind: ExtraKind
    reason: str
    holder: PodInfo | None = None  # drain: the live Pod whose draining binding the target becomes


def plan_extra_target(
    target: Target,
    *,
    claimed: BindingRecord | None,
    needed: tuple[PodInfo, ServiceInfo] | None,
    ip_holders: Sequence[PodInfo],
) -> ExtraDecision:
    """What to do with one candidate. A drained one becomes a draining binding of its holder, so from then
    on the one drain path (the unbind half of the batch) waits out the drain timeout and deregisters it."""
    if claimed is not None:
        return ExtraDecision(
            "keep", f"claimed by the {claimed.state} binding of Pod {claimed.namespace}/{claimed.pod_name}"
        )
    if needed is not None:
        pod, service = needed
        return ExtraDecision("keep", f"Pod {pod.namespace}/{pod.name} is a backend of Service {service.key} there")
    live = [p for p in ip_holders if p.ip == target.ip and p.phase not in _FINISHED_PHASES]
    if not live:
        return ExtraDecision("deregister", f"no live Pod has IP {target.ip}")
    holder = live[0]
    return ExtraDecision(
        "drain", f"Pod {holder.namespace}/{holder.name} holding IP {target.ip} is not a backend there", holder
    )


def by_listener(services: Iterable[tuple[ServiceInfo, bool]], listeners: Sequence[Listener]) -> dict[str, ServiceInfo]:
    """Managed listener id -> the Service it serves, for (Service, adopted CLB?) pairs."""
    managed: dict[str, ServiceInfo] = {}
    for service, adopted in services:
        for listener_id in managed_listener_ids(service, listeners, adopted=adopted):
            managed.setdefault(listener_id, service)
    return managed


def describe_extra(target: Target) -> str:
    return f"{target.ip}:{target.port}/{target.listener_id}"
