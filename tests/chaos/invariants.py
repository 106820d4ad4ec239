"""What must hold in the chaos world: the end state once faults stop, and the safety rules at every moment.

`end_state_violations(world)` is the converged state (what L1 waits for): on every listener of the Service
exactly the eligible Pods' targets at the default weight, one `registered` binding record per target and
none left over, and every eligible Pod's gate True exactly when it is healthy on every listener.

`Monitor` checks the safety rules while the chaos runs:
- S1, at the moment a gate is written True: the Pod is registered and Alive on every listener of the Service
  that selects it, or the gate is released with a reason (released / fail-open, with a message);
- S2, after every operation: no Ready, non-terminating, selected Pod that was serving on a listener has lost
  its target there or been set to weight 0;
- S3, after every operation: no target keeps a weight above 0 for a gone or terminating Pod longer than
  `drain bound` = the drain timeout plus one reconcile period (the retry of last resort when every event
  about the Pod was lost), counting only time in which the product could write (no store outage and no CLB
  fault profile that fails every write).
The CLB state is read from the emulator's model, never through the API, so checking costs no calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shared.domain.backends import ineligibility, selects
from shared.domain.gate import REASON_FAIL_OPEN, REASON_RELEASED
from shared.domain.models import GATE_CONDITION_TYPE, GATE_READY_REASON, PodCondition, PodInfo

if TYPE_CHECKING:
    from tests.chaos.world import World

TargetKey = tuple[str, str, int]  # listener id, ip, port


def _container_port(port: int) -> int:
    from tests.chaos.world import PORTS

    return PORTS[port][1]


def _listeners(world: World) -> dict[int, str]:
    """Service port -> listener id, for the Service's current ports that have a listener on the CLB."""
    lb_id = world.lb_id()
    by_port = {view.port: view.listener_id for view in world.model.dataplane_snapshot() if view.lb_id == lb_id}
    return {port: by_port[port] for port in world.service_ports() if port in by_port}


def _targets(world: World) -> dict[TargetKey, tuple[int, str]]:
    """Every target of the world's CLB: (listener, ip, port) -> (weight, health)."""
    lb_id = world.lb_id()
    found: dict[TargetKey, tuple[int, str]] = {}
    for view in world.model.dataplane_snapshot():
        if view.lb_id == lb_id:
            for target in view.targets:
                found[(view.listener_id, target.ip, target.port)] = (target.weight, target.health)
    return found


def _serving(world: World, pod: PodInfo) -> bool:
    """Ready (containers ready and gate True), not terminating, selected by the Service and eligible."""
    gate = pod.condition(GATE_CONDITION_TYPE)
    return (
        gate is not None
        and gate.status == "True"
        and pod.containers_ready
        and pod.deletion_timestamp is None
        and selects(world.service().selector, pod.labels)
        and ineligibility(pod) is None
    )


def end_state_violations(world: World) -> list[str]:
    problems: list[str] = []
    lb_id = world.lb_id()
    clb = world.deps.require_clb()
    listeners = {lst.port: lst.listener_id for lst in clb.list_listeners(lb_id)}
    missing_listeners = sorted(set(world.service_ports()) - set(listeners))
    extra_listeners = sorted(set(listeners) - set(world.service_ports()))
    problems += [f"no listener for Service port {port}" for port in missing_listeners]
    problems += [f"listener left for a removed Service port {port}" for port in extra_listeners]
    ports = [port for port in world.service_ports() if port in listeners]
    targets = clb.list_targets(lb_id)
    seen = [(t.listener_id, t.ip, t.port) for t in targets]
    if len(seen) != len(set(seen)):
        problems.append(f"duplicate targets on the CLB: {sorted(seen)}")
    eligible = world.eligible_pods()
    want = {(listeners[port], p.ip, _container_port(port)) for p in eligible for port in ports}
    have = set(seen)
    problems += [f"dead or unwanted target bound: {t}" for t in sorted(have - want)]
    problems += [f"eligible Pod target missing: {t}" for t in sorted(want - have)]
    problems += [f"target with weight {t.weight}: {t}" for t in targets if t.weight != 10]
    bindings = world.store.raw.list_bindings(lb_id=lb_id)
    by_key = {(b.listener_id, b.ip, b.port): b for b in bindings}
    eligible_uids = {p.uid for p in eligible}
    for b in bindings:
        if b.state != "registered" or b.pod_uid not in eligible_uids or (b.listener_id, b.ip, b.port) not in have:
            problems.append(f"orphaned binding record: {b.pod_name} {b.listener_id} {b.ip}:{b.port} {b.state}")
    problems += [f"bound target without a binding record: {t}" for t in sorted(have - set(by_key))]
    health = {(h.listener_id, h.ip, h.port): h.healthy for h in clb.describe_target_health([lb_id])[lb_id]}
    for pod in world.cluster.pods.values():
        gate = pod.condition(GATE_CONDITION_TYPE)
        mine = [(listeners[port], pod.ip, _container_port(port)) for port in ports]
        healthy_everywhere = all(health.get(t, False) for t in mine)
        if gate is not None and gate.status == "True" and gate.reason == GATE_READY_REASON:
            # A sick Pod keeps its gate (the gate is a fence, not a health signal); a healthy one must show it.
            if pod.uid in eligible_uids and not healthy_everywhere and world.pods[pod.name].healthy:
                problems.append(f"gate True on {pod.name} but not healthy on every listener")
        if pod.uid in eligible_uids and healthy_everywhere and (gate is None or gate.status != "True"):
            problems.append(f"{pod.name} healthy on every listener but its gate is {gate and gate.status}")
    return problems


@dataclass
class Violation:
    rule: str
    at_s: float
    operation: int
    detail: str

    def __str__(self) -> str:
        return f"{self.rule} at t={self.at_s:.1f}s after operation #{self.operation}: {self.detail}"


@dataclass
class Monitor:
    """Watches one world: S1 on every gate write, S2 and S3 whenever `check()` is called."""

    world: World
    operation: int = 0
    violations: list[Violation] = field(default_factory=list)
    blocked: bool = False  # set by the scenario while a fault stops every write
    _serving: set[tuple[str, str]] = field(default_factory=set)  # (listener id, Pod uid) seen serving
    _leaving_since: dict[TargetKey, float] = field(default_factory=dict)
    _reported: set[tuple[str, TargetKey | str]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.world.on_gate_write = self.on_gate_write
        self._origin = self.world.clock.now()

    def elapsed_s(self) -> float:
        """Simulated seconds since the monitor started watching."""
        return self.world.clock.now() - self._origin

    def drain_bound_s(self) -> float:
        from tests.chaos.world import TIMER_PERIODS_S

        return self.world.settings.drain_timeout_s + TIMER_PERIODS_S["reconcile"]

    def _report(self, rule: str, key: TargetKey | str, detail: str) -> None:
        if (rule, key) not in self._reported:
            self._reported.add((rule, key))
            self.violations.append(Violation(rule, self.elapsed_s(), self.operation, detail))

    # --- S1 -----------------------------------------------------------------------------------------
    def on_gate_write(self, pod: PodInfo, condition: PodCondition) -> None:
        live = self.world.cluster.get_pod(pod.namespace, pod.name)
        if condition.status != "True" or live is None or live.uid != pod.uid:
            return
        before = live.condition(GATE_CONDITION_TYPE)
        if before is not None and before.status == "True":
            return
        if condition.reason in (REASON_RELEASED, REASON_FAIL_OPEN):
            if not condition.message:
                self._report("S1", pod.uid, f"{pod.name} released without saying why ({condition.reason})")
            return
        if condition.reason != GATE_READY_REASON:
            self._report("S1", pod.uid, f"{pod.name} gate True with unknown reason {condition.reason!r}")
            return
        if not selects(self.world.service().selector, live.labels):
            self._report("S1", pod.uid, f"{pod.name} gate True as ready but no direct-access Service selects it")
            return
        targets = _targets(self.world)
        for port, listener_id in _listeners(self.world).items():
            weight_health = targets.get((listener_id, live.ip, _container_port(port)))
            if weight_health is None:
                self._report("S1", pod.uid, f"{pod.name} gate True but not registered on port {port}")
            elif weight_health[1] != "Alive":
                self._report("S1", pod.uid, f"{pod.name} gate True but {weight_health[1]} on port {port}")

    # --- S2 and S3 ----------------------------------------------------------------------------------
    def check(self) -> None:
        now = self.world.clock.now()
        targets = _targets(self.world)
        listeners = _listeners(self.world)
        pods = list(self.world.cluster.pods.values())
        serving_now: set[tuple[str, str]] = set()
        for pod in pods:
            if not _serving(self.world, pod):
                continue
            for port, listener_id in listeners.items():
                weight_health = targets.get((listener_id, pod.ip, _container_port(port)))
                key = (listener_id, pod.uid)
                if weight_health is not None and weight_health[0] > 0:
                    serving_now.add(key)
                elif key in self._serving:
                    what = "deregistered" if weight_health is None else "set to weight 0"
                    self._report("S2", f"{pod.uid}@{listener_id}", f"Ready {pod.name} {what} on port {port}")
        self._serving = serving_now
        # S3 is about Pods that leave (terminating or gone); an unready or unselected Pod is drained by the
        # same path, but it has not left, and its IP may be serving again at any moment.
        staying = {pod.ip for pod in pods if pod.deletion_timestamp is None}
        leaving = {key for key, (weight, _) in targets.items() if weight > 0 and key[1] not in staying}
        self._leaving_since = {key: self._leaving_since.get(key, now) for key in leaving}
        if self.blocked:
            self._leaving_since = dict.fromkeys(leaving, now)
        for key, since in self._leaving_since.items():
            if now - since > self.drain_bound_s():
                self._report("S3", key, f"target {key} still weighted {now - since:.0f}s after its Pod left")
