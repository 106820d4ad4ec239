"""Listener planning: desired listeners from a Service's ports + TkeServiceConfig, and the diff vs the CLB.

Pure functions called by the service step (to create/modify/delete listeners) and by bind/flip (to map
each Service port to the listener that serves it). One listener per Service port and protocol; listeners
we create carry a name derived from the Service so teardown on an adopted CLB removes only ours.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from shared.domain.models import EXISTED_LB_ANNOTATION, HealthCheck, Listener, ListenerSpec, ServiceInfo, ServicePort
from shared.domain.tke_service_config import TkeServiceConfig

LISTENER_NAME_PREFIX = "clb-direct"


def listener_name(namespace: str, service: str, protocol: str, port: int) -> str:
    return f"{LISTENER_NAME_PREFIX}/{namespace}/{service}/{protocol}-{port}"


def is_owned_listener(listener: Listener, namespace: str, service: str) -> bool:
    """True when this listener was created by clb-direct for this Service (safe to delete)."""
    return (listener.name or "").startswith(f"{LISTENER_NAME_PREFIX}/{namespace}/{service}/")


def desired_listeners(service: ServiceInfo, config: TkeServiceConfig | None) -> list[ListenerSpec]:
    """One spec per distinct (protocol, port) of the Service, with the TkeServiceConfig entry applied.

    Direct access needs a health check for the readiness gate to mean anything, so listeners without a
    configured one get the CLB defaults (TCP, or PING on UDP; 5 s interval, 2 s timeout, 3/3 thresholds).
    """
    specs: dict[tuple[str, int], ListenerSpec] = {}
    for port in service.ports:
        key = (port.protocol, port.port)
        if key in specs:
            continue
        spec = ListenerSpec(
            port=port.port,
            protocol=port.protocol,
            name=listener_name(service.namespace, service.name, port.protocol, port.port),
            # UDP has no handshake to probe: the CLB only accepts PING/CUSTOM checks on UDP listeners.
            health_check=HealthCheck(check_type="PING") if port.protocol == "UDP" else HealthCheck(),
        )
        entry = config.for_listener(port.protocol, port.port) if config else None
        specs[key] = entry.apply_to(spec) if entry else spec
    return list(specs.values())


def listener_differences(desired: ListenerSpec, actual: Listener) -> list[str]:
    """Attributes of `actual` that differ from `desired` (only the ones clb-direct manages)."""
    diffs: list[str] = []
    if desired.session_expire_s != actual.session_expire_s:
        diffs.append("session_expire_s")
    if desired.scheduler != actual.scheduler:
        diffs.append("scheduler")
    if desired.deregister_target_rst != actual.deregister_target_rst:
        diffs.append("deregister_target_rst")
    if desired.health_check is not None:
        have = actual.health_check or HealthCheck(enabled=False)
        want = desired.health_check
        # The CLB reports back defaults for fields we never set; compare only what we set explicitly.
        for name in want.model_fields_set | {"enabled"}:
            if getattr(want, name) != getattr(have, name):
                diffs.append(f"health_check.{name}")
    return diffs


@dataclass
class ListenerPlan:
    create: list[ListenerSpec] = field(default_factory=list)
    update: list[tuple[Listener, ListenerSpec, list[str]]] = field(default_factory=list)
    delete: list[Listener] = field(default_factory=list)
    keep: list[Listener] = field(default_factory=list)
    # Wanted ports held on an adopted CLB by a listener clb-direct did not create: never written.
    conflicts: list[tuple[ListenerSpec, Listener]] = field(default_factory=list)

    @property
    def is_noop(self) -> bool:
        return not (self.create or self.update or self.delete)


def plan_listeners(
    desired: Sequence[ListenerSpec],
    actual: Sequence[Listener],
    *,
    namespace: str,
    service: str,
    owns_lb: bool,
) -> ListenerPlan:
    """Diff desired listeners against the CLB's.

    Matching is by (protocol, port): an existing listener on a wanted port is reconfigured, never
    duplicated, when we own the CLB or created that listener; on an adopted CLB a listener someone else
    created on a wanted port is a conflict, left exactly as it is (the caller warns). Unwanted
    listeners are deleted when we own the CLB or created them ourselves; other listeners on an adopted
    CLB belong to someone else and are left alone.
    """
    plan = ListenerPlan()
    by_key = {(listener.protocol, listener.port): listener for listener in actual}
    wanted = {(spec.protocol, spec.port) for spec in desired}
    for spec in desired:
        existing = by_key.get((spec.protocol, spec.port))
        if existing is None:
            plan.create.append(spec)
            continue
        if not owns_lb and not is_owned_listener(existing, namespace, service):
            plan.conflicts.append((spec, existing))
            continue
        diffs = listener_differences(spec, existing)
        if diffs:
            plan.update.append((existing, spec, diffs))
        else:
            plan.keep.append(existing)
    for key, listener in by_key.items():
        if key in wanted:
            continue
        if owns_lb or is_owned_listener(listener, namespace, service):
            plan.delete.append(listener)
    return plan


def listeners_for_service(
    service: ServiceInfo, actual: Sequence[Listener]
) -> list[tuple[ServicePort, Listener | None]]:
    """Each Service port with the CLB listener serving it (None when it does not exist yet).

    On an adopted CLB (`tke-existed-lbid`) only listeners clb-direct created for this Service serve it:
    a foreign listener on the same port is a conflict, and nothing is ever registered into it.
    """
    adopted = bool(service.annotations.get(EXISTED_LB_ANNOTATION))
    by_key = {
        (listener.protocol, listener.port): listener
        for listener in actual
        if not adopted or is_owned_listener(listener, service.namespace, service.name)
    }
    return [(port, by_key.get((port.protocol, port.port))) for port in service.ports]


def foreign_listeners(service: ServiceInfo, actual: Sequence[Listener]) -> dict[tuple[str, int], Listener]:
    """On an adopted CLB, the listeners someone else created on this Service's ports, by (protocol, port)."""
    if not service.annotations.get(EXISTED_LB_ANNOTATION):
        return {}
    ports = {(port.protocol, port.port) for port in service.ports}
    return {
        (listener.protocol, listener.port): listener
        for listener in actual
        if (listener.protocol, listener.port) in ports
        and not is_owned_listener(listener, service.namespace, service.name)
    }


def port_conflict_text(protocol: str, port: int, lb_id: str, listener: Listener) -> str:
    """What a port conflict on an adopted CLB is and what to do: the Service's Warning and the Pod's gate."""
    return (
        f"port {protocol}:{port} of adopted CLB {lb_id} is held by listener {listener.listener_id} "
        f"({listener.name or 'unnamed'}) that clb-direct did not create; it is left untouched and no Pod is "
        "bound on that port: delete or move that listener, or give the Service another port"
    )


def describe_listener(listener: Listener) -> str:
    return f"{listener.protocol}:{listener.port} ({listener.listener_id})"
