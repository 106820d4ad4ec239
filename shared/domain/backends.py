"""Backend planning: which Pods belong on which listener, at which port and weight, and what to change.

Pure functions called by the bind step (register / re-weight, quota) and the unbind step (drain, then
deregister). Registration follows rule 2 (ContainersReady, not Ready: a gated Pod cannot be Ready before
it is healthy on the CLB); termination follows rule 7 (weight 0 first, deregister once gone or after the
drain timeout).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from shared.domain.models import CUSTOM_WEIGHT_ANNOTATION as CUSTOM_WEIGHT
from shared.domain.models import BindingRecord, Listener, PodInfo, ServiceInfo, ServicePort, Target


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """Service selector semantics: every key matches; an empty selector selects nothing (no Endpoints)."""
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def ineligibility(pod: PodInfo) -> str | None:
    """Why this Pod must not be a backend right now, or None when it may be registered."""
    if pod.deletion_timestamp is not None:
        return "Pod is terminating"
    if pod.host_network:
        return "hostNetwork Pods cannot be bound directly (the Pod IP is the node IP)"
    if not pod.ip:
        return "Pod has no IP yet"
    if pod.phase in ("Succeeded", "Failed"):
        return f"Pod phase is {pod.phase}"
    if not pod.containers_ready:
        return "containers are not ready"
    return None


def resolve_target_port(service_port: ServicePort, pod: PodInfo) -> int | None:
    """The Pod port a Service port sends to: a number, a named container port (per Pod), or the port."""
    target = service_port.target_port
    if target is None:
        return service_port.port
    if isinstance(target, int):
        return target
    if target.isdigit():
        return int(target)
    for port in pod.container_ports:
        if port.name == target and port.protocol == service_port.protocol:
            return port.container_port
    return None


def pod_weight(pod: PodInfo, default: int) -> tuple[int, str | None]:
    """Weight from the Pod's `custom-weight` annotation, else `default`; a bad value is reported."""
    raw = pod.annotations.get(CUSTOM_WEIGHT)
    if raw is None:
        return default, None
    try:
        weight = int(raw.strip())
    except ValueError:
        weight = -1
    if not 0 <= weight <= 100:
        return default, (
            f"annotation {CUSTOM_WEIGHT}={raw!r} on Pod {pod.namespace}/{pod.name} is not an integer in "
            f"0..100; using the default weight {default}"
        )
    return weight, None


@dataclass(frozen=True)
class DesiredTarget:
    """One Pod on one listener, as the Service wants it."""

    listener_id: str
    ip: str
    port: int
    weight: int
    pod_uid: str
    namespace: str
    pod_name: str
    service: str
    created: str = ""

    def target(self, weight: int | None = None) -> Target:
        return Target(
            listener_id=self.listener_id, ip=self.ip, port=self.port, weight=self.weight if weight is None else weight
        )


@dataclass
class DesiredBackends:
    targets: list[DesiredTarget] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)  # pod uid -> why it is not a backend
    warnings: list[str] = field(default_factory=list)


def desired_backends(
    service: ServiceInfo,
    port_listeners: Sequence[tuple[ServicePort, Listener | None]],
    pods: Iterable[PodInfo],
    *,
    default_weight: int,
    refused: Mapping[str, str] | None = None,
) -> DesiredBackends:
    """Targets for every eligible, selected Pod on every listener of the Service.

    `refused` maps Pod UIDs a use limit excludes to the reason (limits.py); they are reported as problems.
    """
    result = DesiredBackends()
    refused = refused or {}
    for pod in sorted(pods, key=lambda p: (p.creation_timestamp or "", p.name)):
        if not selects(service.selector, pod.labels):
            continue
        reason = refused.get(pod.uid) or ineligibility(pod)
        if reason is not None:
            result.problems[pod.uid] = reason
            continue
        weight, warning = pod_weight(pod, default_weight)
        if warning:
            result.warnings.append(warning)
        for service_port, listener in port_listeners:
            if listener is None:
                continue
            port = resolve_target_port(service_port, pod)
            if port is None:
                result.problems[pod.uid] = (
                    f"targetPort {service_port.target_port!r} of Service port {service_port.port} matches no "
                    f"{service_port.protocol} container port of the Pod"
                )
                continue
            result.targets.append(
                DesiredTarget(
                    listener_id=listener.listener_id,
                    ip=pod.ip or "",
                    port=port,
                    weight=weight,
                    pod_uid=pod.uid,
                    namespace=pod.namespace,
                    pod_name=pod.name,
                    service=str(service.key),
                    created=pod.creation_timestamp or "",
                )
            )
    return result


def backend_count(targets: Iterable[Target | DesiredTarget]) -> int:
    """Backends counted against the CLB quota: one per target (listener, IP, port), as CLB counts them."""
    return len({(t.listener_id, t.ip, t.port) for t in targets})


@dataclass
class RegistrationPlan:
    register: list[DesiredTarget] = field(default_factory=list)
    reweight: list[DesiredTarget] = field(default_factory=list)
    over_quota: list[DesiredTarget] = field(default_factory=list)
    already: list[DesiredTarget] = field(default_factory=list)


def plan_registration(desired: Sequence[DesiredTarget], actual: Sequence[Target], *, quota: int) -> RegistrationPlan:
    """Register what is missing, re-weight what differs, refuse (never silently) what exceeds the quota.

    Targets already on the CLB stay here (extra ones were removed beforehand: `extra_targets.py`); new ones
    are admitted oldest Pod first until the CLB holds `quota` backends, so a scale-up past the quota never
    evicts serving Pods.
    """
    plan = RegistrationPlan()
    on_clb = {(t.listener_id, t.ip, t.port): t for t in actual}
    used = backend_count(actual)
    missing_by_pod: dict[str, list[DesiredTarget]] = {}
    for want in desired:
        have = on_clb.get((want.listener_id, want.ip, want.port))
        if have is None:
            missing_by_pod.setdefault(want.pod_uid, []).append(want)
        else:
            (plan.reweight if have.weight != want.weight else plan.already).append(want)
    # All listeners of one Pod go together: a half-registered Pod can never turn healthy everywhere.
    # `desired` is ordered oldest Pod first, and dict order keeps that.
    for targets in missing_by_pod.values():
        if used + len(targets) <= quota:
            used += len(targets)
            plan.register.extend(targets)
        else:
            plan.over_quota.extend(targets)
    return plan


UnbindKind = Literal["keep", "drain", "wait", "deregister", "forget"]


@dataclass(frozen=True)
class UnbindDecision:
    kind: UnbindKind
    reason: str
    recheck_at: float | None = None


def plan_unbind(
    binding: BindingRecord, pod: PodInfo | None, *, still_wanted: str | None, now: float, drain_timeout_s: float
) -> UnbindDecision:
    """What to do with one binding. `still_wanted` is None when the Pod should stay a backend, else why not.

    A Pod object that is gone (or replaced by one with another UID) is deregistered at once; a live Pod
    that stopped qualifying is drained (weight 0) first and deregistered after `drain_timeout_s`.
    """
    if binding.state == "deregistered":
        return UnbindDecision("forget", "already deregistered")
    if pod is None or pod.uid != binding.pod_uid:
        return UnbindDecision("deregister", "Pod is gone")
    if still_wanted is None:
        return UnbindDecision("keep", "Pod is still an eligible, selected backend")
    if binding.state != "draining" or binding.drain_started_at is None:
        return UnbindDecision("drain", still_wanted, recheck_at=now + drain_timeout_s)
    deadline = binding.drain_started_at + drain_timeout_s
    if now >= deadline:
        return UnbindDecision("deregister", f"{still_wanted}; drain timeout of {drain_timeout_s:g}s elapsed")
    return UnbindDecision("wait", still_wanted, recheck_at=deadline)
