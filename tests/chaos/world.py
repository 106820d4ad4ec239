"""The chaos world: a fake cluster, the CLB emulator model with faults, the real router, steps and gateway.

Everything runs in one thread on a `FakeClock` that the CLB model, the gateway's retries and the store's
schedule of delayed re-checks all share, so a seed fixes the whole run. Cluster changes become watch events that
are delivered to the real router (`route_changes`) dropped, duplicated or reordered at chosen rates;
the steps it dispatches queue on `ChaosQueue`, which runs them through the real function handlers in a
seeded random order with SCF's async retry rule (3 attempts, then a dead letter). `CrashingStore` makes
a step die right after its CLB call and before its binding record is written. `settle()` ends the chaos
and runs one reconcile pass (plus the schedule timer, the health poll and the follow-ups they queue);
`violations()` then lists every broken invariant.
"""

from __future__ import annotations

import importlib
import itertools
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from emulators.clb.config import ClbEmulatorConfig
from emulators.clb.faults import FaultRule
from emulators.clb.model import ClbModel
from emulators.clb.responses_transport import clb_fake
from shared.adapters.store_factory import open_store
from shared.adapters.tencent_clb import TencentClbGateway
from shared.clock import FakeClock
from shared.config import Settings
from shared.deps import Deps
from shared.domain.backends import ineligibility, selects
from shared.domain.models import GATE_CONDITION_TYPE, ContainerPort, PodInfo, ServiceInfo, ServicePort, StepRequest
from shared.health import poll_pending
from shared.normalize import normalize_watch
from shared.reconcile import reconcile_all
from shared.router import RouteResult, route_changes
from shared.schedule import drain_schedule
from shared.steps import run_step
from tests.support.fakes import FakeCluster

LB_ID_ANNOTATION = "service.kubernetes.io/loadbalance-id"
STEP_FUNCTIONS = ("service", "bind", "unbind", "flip", "reconcile")
SCF_ATTEMPTS = 3
WRITE_ACTIONS = frozenset(
    {"BatchRegisterTargets", "BatchDeregisterTargets", "BatchModifyTargetWeight", "RegisterTargets"}
)


class SimulatedCrash(Exception):
    """The function instance died (timeout, OOM) at this point; SCF retries the invocation."""


class CrashingStore:
    """The real store, except that a binding write right after a CLB write may 'crash' the function."""

    def __init__(self, inner: Any, rng: random.Random) -> None:
        self._inner = inner
        self._rng = rng
        self.rate = 0.0
        self.crashes = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _maybe_crash(self, what: str) -> None:
        if self.rate and self._rng.random() < self.rate:
            self.crashes += 1
            raise SimulatedCrash(f"crash after the CLB call, before {what}")

    def put_binding(self, record: Any) -> None:
        # "registering" is written before the CLB call; the later states record a call already made.
        if record.state != "registering":
            self._maybe_crash(f"recording {record.state}")
        self._inner.put_binding(record)

    def delete_binding(self, lb_id: str, listener_id: str, pod_uid: str) -> None:
        self._maybe_crash("forgetting the binding")
        self._inner.delete_binding(lb_id, listener_id, pod_uid)


@dataclass
class ChaosQueue:
    """Async invocations, run in a seeded random order with duplicates and SCF's retry-then-dead-letter."""

    rng: random.Random
    duplicate_rate: float = 0.0
    items: list[tuple[str, dict[str, Any], int]] = field(default_factory=list)
    dead_letters: list[tuple[str, dict[str, Any], str]] = field(default_factory=list)
    executed: dict[str, int] = field(default_factory=dict)
    _ids: Iterator[int] = field(default_factory=itertools.count)

    def invoke_async(self, function: str, payload: Any) -> str:
        # The guardian repairs the webhook; it has no part in the target/gate invariants checked here.
        if function != "guardian":
            self.items.append((function, dict(payload), 0))
        return f"chaos-{next(self._ids)}"

    def run(self, call: Callable[[str, dict[str, Any]], Any], *, ordered: bool = False, limit: int = 2000) -> None:
        while self.items and limit > 0:
            limit -= 1
            index = 0 if ordered else self.rng.randrange(len(self.items))
            function, payload, attempt = self.items.pop(index)
            if not ordered and self.rng.random() < self.duplicate_rate:
                self.items.append((function, dict(payload), attempt))  # at-least-once delivery
            self.executed[function] = self.executed.get(function, 0) + 1
            try:
                call(function, payload)
            except Exception as exc:
                if attempt + 1 < SCF_ATTEMPTS:
                    self.items.append((function, payload, attempt + 1))
                else:
                    self.dead_letters.append((function, payload, repr(exc)))
        if self.items:
            raise AssertionError(f"step queue did not drain: {len(self.items)} invocations left (a loop?)")


@dataclass
class WorldPod:
    name: str
    ip: str
    healthy: bool = True


class World:
    """One direct-access Service (ports 80 and 81 -> named container ports) and the Pods it may select."""

    def __init__(self, model: ClbModel, endpoint: str, clock: FakeClock, seed: int) -> None:
        self.rng = random.Random(seed)
        self.model = model
        self.clock = clock
        self.cluster = FakeCluster()
        self.settings = Settings.load(
            {},
            clb_endpoint=endpoint,
            secret_id="AKIDchaos",
            secret_key="chaos-key",
            store_url="memory://",
            cluster_id="cls-chaos",
            vpc_id="vpc-chaos",
            webhook_url="https://127.0.0.1:8443/admission",
            clb_call_deadline_s=5.0,
        )
        self.store = CrashingStore(open_store("memory://"), random.Random(seed + 1))
        self.queue = ChaosQueue(random.Random(seed + 2))
        gateway = TencentClbGateway.from_settings(self.settings, store=self.store, clock=clock)  # type: ignore[arg-type]
        self.deps = Deps(
            settings=self.settings, store=self.store, clock=clock, clb=gateway, cluster=self.cluster, invoker=self.queue
        )  # type: ignore[arg-type]
        self.pods: dict[str, WorldPod] = {}
        self.drop_event_rate = 0.0
        self.duplicate_event_rate = 0.0
        self.reorder = False
        self._held: list[tuple[str, str, dict[str, Any]]] = []
        self._rv = itertools.count(1)
        self._names = itertools.count()
        self._batches = itertools.count()
        self.lost_events = 0
        self.pod_changes = 0

    # --- functions --------------------------------------------------------------------------------
    def invoke(self, function: str, payload: dict[str, Any]) -> Any:
        self.clock.advance(0.5)  # time passes between invocations (rate windows, leases)
        module = importlib.import_module(f"functions.{function}.handler")
        return module.main_handler(payload, {"request_id": f"chaos-{function}", "function_name": function})

    def run_queue(self, *, ordered: bool = False) -> None:
        self.queue.run(self.invoke, ordered=ordered)

    def run_schedule_timer(self, *, rounds: int = 10) -> None:
        """The schedule timer of production: let time pass to each scheduled item's due time, drain the
        schedule (drain re-checks, including ones whose invocation went to the dead letters) and run
        what it invoked."""
        while rounds > 0 and (due := self.deps.store.schedule_list(limit=1)):
            rounds -= 1
            self.clock.advance(max(0.0, due[0].due_at - self.clock.now()))
            drain_schedule(self.deps)
            self.run_queue(ordered=True)

    # --- the Service ------------------------------------------------------------------------------
    def create_service(self) -> str:
        service = ServiceInfo(
            namespace="default",
            name="web",
            uid="svc-uid-web",
            resource_version=str(next(self._rv)),
            type="LoadBalancer",
            annotations={"service.cloud.tencent.com/direct-access": "true"},
            selector={"app": "web"},
            ports=[
                ServicePort(name="http", port=80, target_port="http"),
                ServicePort(name="admin", port=81, target_port="admin"),
            ],
        )
        self.cluster.put_service(service)
        run_step(self.deps, StepRequest(step="service", services=[service.key], reason="chaos setup"))
        self.run_queue(ordered=True)
        return self.lb_id()

    def lb_id(self) -> str:
        return self.cluster.services[("default", "web")].annotations[LB_ID_ANNOTATION]

    # --- Pods -------------------------------------------------------------------------------------
    def add_pod(self, *, ready: bool = True, healthy: bool = True, reuse_ip_of: str | None = None) -> str:
        index = next(self._names)
        name = f"web-{index}"
        ip = self.pods[reuse_ip_of].ip if reuse_ip_of else f"10.0.{index // 200}.{index % 200 + 1}"
        self.pods[name] = WorldPod(name, ip, healthy)
        pod = PodInfo(
            namespace="default",
            name=name,
            uid=f"uid-{name}",
            resource_version=str(next(self._rv)),
            labels={"app": "web"},
            ip=ip,
            phase="Running",
            containers_ready=ready,
            creation_timestamp="2023-11-14T22:13:20Z",
            readiness_gates=[GATE_CONDITION_TYPE],
            owner_kind="ReplicaSet",
            owner_name="web-rs1",
            annotations={"tke.cloud.tencent.com/networks": "tke-route-eni"},
            container_ports=[
                ContainerPort(name="http", container_port=8080),
                ContainerPort(name="admin", container_port=9090),
            ],
        )
        self.cluster.put_pod(pod)
        self._emit("ADDED", pod)
        return name

    def update_pod(self, name: str, **changes: Any) -> None:
        pod = self.cluster.update_pod("default", name, resource_version=str(next(self._rv)), **changes)
        self.pod_changes += 1
        self._emit("MODIFIED", pod)

    def terminate_pod(self, name: str) -> None:
        self.update_pod(name, deletion_timestamp="2023-11-14T22:30:00Z")

    def delete_pod(self, name: str) -> None:
        pod = self.cluster.get_pod("default", name)
        if pod is not None:
            self.cluster.remove_pod("default", name)
            self.pod_changes += 1
            self._emit("DELETED", pod.model_copy(update={"resource_version": str(next(self._rv))}))

    def live_pod_names(self) -> list[str]:
        return sorted(n for n in self.pods if self.cluster.get_pod("default", n) is not None)

    # --- events -----------------------------------------------------------------------------------
    def _emit(self, watch_type: str, pod: PodInfo) -> None:
        meta: dict[str, Any] = {
            "name": pod.name,
            "namespace": pod.namespace,
            "uid": pod.uid,
            "resourceVersion": pod.resource_version,
            "labels": pod.labels,
        }
        if pod.deletion_timestamp:
            meta["deletionTimestamp"] = pod.deletion_timestamp
        obj = {
            "kind": "Pod",
            "metadata": meta,
            "spec": {"readinessGates": [{"conditionType": GATE_CONDITION_TYPE}]},
            "status": {
                "podIP": pod.ip,
                "phase": pod.phase,
                "conditions": [{"type": "ContainersReady", "status": "True" if pod.containers_ready else "False"}],
            },
        }
        if self.rng.random() < self.drop_event_rate:
            self.lost_events += 1
            return
        copies = 2 if self.rng.random() < self.duplicate_event_rate else 1
        self._held.extend([(watch_type, "pods", obj)] * copies)

    def withhold_events(self) -> list[tuple[str, str, dict[str, Any]]]:
        """Take the events not yet delivered, to send them late with `late_events`."""
        events, self._held = self._held, []
        return events

    def late_events(self, events: list[tuple[str, str, dict[str, Any]]]) -> None:
        self._held.extend(events)

    def deliver(self) -> None:
        """Send the held events to the router in one or more batches (shuffled when reordering)."""
        events, self._held = self._held, []
        if self.reorder:
            self.rng.shuffle(events)
        while events:
            size = self.rng.randint(1, max(1, len(events)))
            batch, events = events[:size], events[size:]
            changes = [c for c in (normalize_watch(*e) for e in batch) if c is not None]
            route_changes(self.deps, changes, RouteResult(correlation_id=f"batch-{next(self._batches)}"))

    # --- faults -----------------------------------------------------------------------------------
    def set_faults(self, *rules: FaultRule) -> None:
        for rule in rules:
            self.model.set_fault(rule)

    def end_chaos(self) -> None:
        self.model.clear_faults()
        self.store.rate = 0.0
        self.queue.duplicate_rate = 0.0
        self.drop_event_rate = self.duplicate_event_rate = 0.0

    def set_health_from_pods(self) -> None:
        """The data plane's verdict: each bound target is Alive or Dead as its Pod's `healthy` says."""
        clb = self.deps.require_clb()
        by_ip: dict[str, bool] = {}
        for name, world_pod in self.pods.items():
            pod = self.cluster.get_pod("default", name)
            if pod is not None and pod.deletion_timestamp is None:
                by_ip[world_pod.ip] = world_pod.healthy
        lb_id = self.lb_id()
        for target in clb.list_targets(lb_id):
            detail = "Alive" if by_ip.get(target.ip, False) else "Dead"
            self.model.set_target_health(lb_id, target.listener_id, target.ip, target.port, detail)

    def settle(self) -> dict[str, Any]:
        """End the chaos: deliver what is left, let time pass, one reconcile, the health poll, follow-ups."""
        self.end_chaos()
        self.deliver()
        self.run_queue()
        self.clock.advance(self.settings.drain_timeout_s + 5)
        report = reconcile_all(self.deps)
        self.run_queue(ordered=True)
        self.run_schedule_timer()
        self.set_health_from_pods()
        poll_pending(self.deps, correlation_id="chaos-final-poll")
        self.run_queue(ordered=True)
        return report

    def write_budget(self) -> int:
        """Most successful target writes the run may need: per Pod a register, a drain and a deregister,
        per later Pod change a drain and a re-register, plus one repeat per crash or dropped response."""
        dropped = sum(1 for call in self.model.calls()["calls"] if call["dropped"])
        return 3 * len(self.pods) + 2 * self.pod_changes + self.store.crashes + dropped

    def write_calls(self, *, succeeded_only: bool = True) -> int:
        return sum(
            1
            for call in self.model.calls()["calls"]
            if call["action"] in WRITE_ACTIONS and (not succeeded_only or call["error_code"] is None)
        )

    # --- invariants -------------------------------------------------------------------------------
    def eligible_pods(self) -> list[PodInfo]:
        service = self.cluster.services[("default", "web")]
        return [
            p for p in self.cluster.pods.values() if selects(service.selector, p.labels) and ineligibility(p) is None
        ]

    def violations(self) -> list[str]:
        problems: list[str] = []
        lb_id = self.lb_id()
        clb = self.deps.require_clb()
        listeners = {lst.port: lst.listener_id for lst in clb.list_listeners(lb_id)}
        container_port = {80: 8080, 81: 9090}
        targets = clb.list_targets(lb_id)
        seen = [(t.listener_id, t.ip, t.port) for t in targets]
        if len(seen) != len(set(seen)):
            problems.append(f"duplicate targets on the CLB: {sorted(seen)}")
        eligible = self.eligible_pods()
        want = {(listeners[port], p.ip, container_port[port]) for p in eligible for port in (80, 81)}
        have = set(seen)
        problems += [f"dead or unwanted target bound: {t}" for t in sorted(have - want)]
        problems += [f"eligible Pod target missing: {t}" for t in sorted(want - have)]
        problems += [f"target with weight {t.weight}: {t}" for t in targets if t.weight != 10]
        bindings = self.store.list_bindings(lb_id=lb_id)
        by_key = {(b.listener_id, b.ip, b.port): b for b in bindings}
        eligible_uids = {p.uid for p in eligible}
        for b in bindings:
            if b.state != "registered" or b.pod_uid not in eligible_uids or (b.listener_id, b.ip, b.port) not in have:
                problems.append(f"orphaned binding record: {b.pod_name} {b.listener_id} {b.ip}:{b.port} {b.state}")
        problems += [f"bound target without a binding record: {t}" for t in sorted(have - set(by_key))]
        health = {(h.listener_id, h.ip, h.port): h.healthy for h in clb.describe_target_health([lb_id])[lb_id]}
        for pod in self.cluster.pods.values():
            gate = pod.condition(GATE_CONDITION_TYPE)
            mine = [(listeners[port], pod.ip, container_port[port]) for port in (80, 81)]
            healthy_everywhere = all(health.get(t, False) for t in mine)
            if gate is not None and gate.status == "True" and pod.uid in eligible_uids and not healthy_everywhere:
                problems.append(f"gate True on {pod.name} but not healthy on every listener")
            if pod.uid in eligible_uids and healthy_everywhere and (gate is None or gate.status != "True"):
                problems.append(f"{pod.name} healthy on every listener but its gate is {gate and gate.status}")
        return problems


@contextmanager
def chaos_world(seed: int, **config: Any) -> Iterator[World]:
    """A fresh world on a fake clock; the function handlers use its deps for the duration."""
    clock = FakeClock()
    emulator = ClbEmulatorConfig(backend_quota=1000, **config)
    with clb_fake(config=emulator, clock=clock.monotonic, wall_clock=clock.now, sleep=clock.sleep) as (model, ep):
        world = World(model, ep, clock, seed)
        handlers = [importlib.import_module(f"functions.{f}.handler") for f in STEP_FUNCTIONS]
        for handler in handlers:
            handler.shell.use(world.deps)
        try:
            yield world
        finally:
            for handler in handlers:
                handler.shell.use(None)
            world.store.close()
