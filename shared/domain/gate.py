"""The readiness-gate decision for one Pod (architecture rules 8 and 9, docs/architecture.md).

Pure: the flip step gathers, per direct-access Service selecting the Pod, the health of the Pod's target
on each of that Service's listeners (from a live DescribeTargetHealth) and calls `decide_gate`. True only
when healthy on every listener of every such Service; True with a release message when none selects it;
optionally True after a per-Service fail-open timeout, with a Warning. The condition message names what
is still pending so `kubectl describe pod` explains a stuck rollout; a port the Pod can never be served
on (held by a foreign listener on an adopted CLB) gives the reason `ListenerPortConflict`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from shared.domain.models import GATE_READY_REASON, TargetHealth

REASON_NOT_READY = "LoadBalancerNetworkGroupNotReady"
REASON_RELEASED = "LoadBalancerNetworkGroupReleased"
REASON_FAIL_OPEN = "LoadBalancerNetworkGroupFailOpen"
# A Service port held on an adopted CLB by a listener clb-direct did not create: the Pod cannot be served
# there until the user moves that listener or the port (the Service's Warning carries the same reason).
REASON_PORT_CONFLICT = "ListenerPortConflict"

GateStatus = Literal["True", "False"]


def health_state(health: TargetHealth | None) -> str:
    """'healthy', or the CLB's detail ('Unknown', 'Dead'), or 'not registered'.

    `Close` means the listener's health check is off: the CLB forwards to every target, so it counts as
    healthy (as GKE treats a NEG without health check).
    """
    if health is None:
        return "not registered"
    if health.healthy or health.detail in ("Alive", "Close"):
        return "healthy"
    return health.detail


@dataclass(frozen=True)
class ListenerGate:
    listener: str
    state: str

    @property
    def healthy(self) -> bool:
        return self.state == "healthy"


@dataclass(frozen=True)
class ServiceGate:
    """The Pod's standing behind one direct-access Service that selects it."""

    service: str
    listeners: Sequence[ListenerGate] = field(default_factory=tuple)
    problem: str | None = None
    fail_open_s: float | None = None
    conflicts: Sequence[str] = field(default_factory=tuple)  # ports held by a foreign listener, explained

    @property
    def healthy(self) -> bool:
        return (
            self.problem is None
            and not self.conflicts
            and bool(self.listeners)
            and all(lg.healthy for lg in self.listeners)
        )

    def pending_text(self) -> str:
        if self.problem is not None:
            return f"{self.service}: {self.problem}"
        if self.conflicts:
            return f"{self.service}: {'; '.join(self.conflicts)}"
        if not self.listeners:
            return f"{self.service}: no listener on the CLB yet"
        pending = ", ".join(f"{lg.listener} {lg.state}" for lg in self.listeners if not lg.healthy)
        return f"{self.service}: {pending}"


@dataclass(frozen=True)
class GateDecision:
    status: GateStatus
    reason: str
    message: str
    warning: str | None = None
    # For a False gate: the Pod age at which fail-open will release it (None: fail-open is off for a
    # blocking Service). The flip step schedules a re-check for then, so no later event is needed.
    fail_open_at_age_s: float | None = None


def decide_gate(
    services: Sequence[ServiceGate], *, pod_problem: str | None = None, pod_age_s: float | None = None
) -> GateDecision:
    """Decide the gate condition for one Pod from its standing behind every selecting Service."""
    if not services:
        return GateDecision(
            "True",
            REASON_RELEASED,
            "no direct-access Service selects this Pod any more; readiness gate released",
        )
    pending = [svc for svc in services if not svc.healthy]
    if not pending and pod_problem is None:
        names = ", ".join(svc.service for svc in services)
        return GateDecision("True", GATE_READY_REASON, f"healthy on every CLB listener of {names}")
    parts = ([pod_problem] if pod_problem else []) + [svc.pending_text() for svc in pending]
    waiting = "; ".join(parts)
    blocking = pending or list(services)
    fail_open_on = all(svc.fail_open_s is not None for svc in blocking)
    limit = max(svc.fail_open_s or 0.0 for svc in blocking)
    if fail_open_on and pod_age_s is not None and pod_age_s >= limit:
        message = (
            f"fail-open: not healthy on the CLB after {limit:g}s ({waiting}); gate released so the rollout "
            "can proceed — traffic may reach this Pod before the CLB health check passes"
        )
        return GateDecision("True", REASON_FAIL_OPEN, message, warning=message)
    if any(svc.conflicts for svc in pending):
        reason, message = REASON_PORT_CONFLICT, f"not served by the CLB: {waiting}"
    else:
        reason, message = REASON_NOT_READY, f"waiting for CLB health: {waiting}"
    return GateDecision("False", reason, message, fail_open_at_age_s=limit if fail_open_on else None)


def parse_fail_open(value: str | None) -> tuple[float | None, str | None]:
    """The fail-open annotation in seconds (None = off) and an error message for a bad value."""
    if value is None or not value.strip():
        return None, None
    try:
        seconds = float(value)
    except ValueError:
        return None, f"fail-open annotation {value!r} is not a number of seconds; fail-open stays off"
    if seconds <= 0:
        return None, f"fail-open annotation {value!r} must be positive; fail-open stays off"
    return seconds, None
