"""The chaos world: a fake cluster, the CLB emulator model with faults, the real router, steps and gateway.

Everything runs in one thread on a `FakeClock` that the CLB model, the gateway's retries and the steps'
delayed re-checks all share, so a seed fixes the whole run. Cluster changes (Pods, the Service, its
TkeServiceConfig) become watch events that are delivered to the real router (`route_changes`) dropped,
duplicated or reordered at chosen rates, or held and coalesced across a relay restart; the steps it
dispatches queue on `ChaosQueue`, which runs them through the real function handlers. The store, the
cluster and the CLB fail as `tests.chaos.faults` says. `tick()` lets time pass with production's timers
firing (health poll every 5 s, schedule every 10 s, reconcile every 60 s) and the CLB's health checks
following each Pod's health. `settle()` ends the chaos and runs one reconcile pass (plus the health poll
and the follow-ups they queue); `violations()` lists every broken end-state invariant
(`tests.chaos.invariants`).
"""

from __future__ import annotations

import importlib
import itertools
import random
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emulators.clb.config import ClbEmulatorConfig
from emulators.clb.faults import FaultRule
from emulators.clb.model import ClbModel
from emulators.clb.responses_transport import clb_fake
from shared.adapters.tencent_clb import TencentClbGateway
from shared.clock import FakeClock
from shared.config import Settings
from shared.deps import Deps
from shared.domain.backends import ineligibility, selects
from shared.domain.models import (
    GATE_CONDITION_TYPE,
    ContainerPort,
    PodCondition,
    PodInfo,
    ServiceInfo,
    ServicePort,
    StepRequest,
)
from shared.health import poll_pending
from shared.normalize import normalize_watch
from shared.reconcile import reconcile_all
from shared.router import RouteResult, route_changes
from shared.schedule import drain_schedule
from shared.steps import run_step
from tests.chaos import invariants
from tests.chaos.faults import FaultyCluster, FaultyStore, SimulatedCrash
from tests.chaos.queue import SCF_ATTEMPTS, ChaosQueue
from tests.support.fakes import FakeCluster

__all__ = ["SCF_ATTEMPTS", "ChaosQueue", "SimulatedCrash", "World", "chaos_world"]

LB_ID_ANNOTATION = "service.kubernetes.io/loadbalance-id"
TKE_CONFIG_ANNOTATION = "service.cloud.tencent.com/tke-service-config"
TKE_CONFIG_NAME = "web-clb"
STEP_FUNCTIONS = ("service", "bind", "unbind", "flip", "reconcile")
# Service port -> (container port name, container port). Port 82 comes and goes with Service edits.
PORTS: dict[int, tuple[str, int]] = {80: ("http", 8080), 81: ("admin", 9090), 82: ("metrics", 7070)}
# Production's timers (serverless.yml): the health poll, the schedule of delayed work, the reconcile pass.
TIMER_PERIODS_S: dict[str, float] = {"poll": 5.0, "schedule": 10.0, "reconcile": 60.0}
WRITE_ACTIONS = frozenset(
    {"BatchRegisterTargets", "BatchDeregisterTargets", "BatchModifyTargetWeight", "RegisterTargets"}
)
Event = tuple[str, str, dict[str, Any]]


@dataclass
class WorldPod:
    name: str
    ip: str
    healthy: bool = True


class World:
    """One direct-access Service (ports 80 and 81, sometimes 82 -> named container ports) and its Pods."""

    def __init__(self, model: ClbModel, endpoint: str, clock: FakeClock, seed: int, store_url: str) -> None:
        self.rng = random.Random(seed)
        self.model = model
        self.clock = clock
        self.cluster = FakeCluster()
        self.settings = Settings.load(
            {},
            clb_endpoint=endpoint,
            secret_id="AKIDchaos",
            secret_key="chaos-key",
            store_url=store_url,
            cluster_id="cls-chaos",
            vpc_id="vpc-chaos",
            webhook_url="https://127.0.0.1:8443/admission",
            clb_call_deadline_s=5.0,
        )
        self.store = FaultyStore(store_url, random.Random(seed + 1))
        self.queue = ChaosQueue(random.Random(seed + 2))
        self.on_gate_write: Callable[[PodInfo, PodCondition], None] = lambda pod, condition: None
        self.kube = FaultyCluster(self.cluster, random.Random(seed + 3), self._gate_written)
        gateway = TencentClbGateway.from_settings(self.settings, store=self.store, clock=clock)  # type: ignore[arg-type]
        self.deps = Deps(
            settings=self.settings, store=self.store, clock=clock, clb=gateway, cluster=self.kube, invoker=self.queue
        )  # type: ignore[arg-type]
        self.pods: dict[str, WorldPod] = {}
        self.drop_event_rate = 0.0
        self.duplicate_event_rate = 0.0
        self.reorder = False
        self._held: list[Event] = []
        self._rv = itertools.count(1)
        self._names = itertools.count()
        self._batches = itertools.count()
        self._timer_due = dict(TIMER_PERIODS_S)
        self.timer_failures: dict[str, int] = {}
        self.lost_events = 0
        self.duplicated_events = 0
        self.relay_restarts = 0
        self.router_failures = 0
        self.pod_changes = 0

    def _gate_written(self, pod: PodInfo, condition: PodCondition) -> None:
        self.on_gate_write(pod, condition)  # looked up at each write: a monitor installs itself later

    # --- functions and timers ---------------------------------------------------------------------
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

    def _fire_timer(self, name: str) -> None:
        timers: dict[str, Callable[[], Any]] = {
            "poll": lambda: poll_pending(self.deps, correlation_id="chaos-poll"),
            "schedule": lambda: drain_schedule(self.deps),
            "reconcile": lambda: reconcile_all(self.deps),
        }
        try:
            timers[name]()
        except AssertionError:
            raise
        except Exception:  # includes SimulatedCrash: the timer's instance died
            # A timer invocation that fails is logged by SCF and simply runs again next period.
            self.timer_failures[name] = self.timer_failures.get(name, 0) + 1
        self.run_queue()

    def tick(self, seconds: float, *, after_each: Callable[[], None] | None = None) -> None:
        """Let `seconds` pass one second at a time: the CLB's health checks follow each Pod's health and
        every timer whose period came round fires (and what it invoked runs)."""
        end = self.clock.now() + seconds
        while self.clock.now() < end:
            self.clock.advance(min(1.0, end - self.clock.now()))
            self.set_health_from_pods()
            for name, due in sorted(self._timer_due.items(), key=lambda item: item[1]):
                if self.clock.now() >= due:
                    self._timer_due[name] = self.clock.now() + TIMER_PERIODS_S[name]
                    self._fire_timer(name)
            if after_each is not None:
                after_each()

    # --- the Service ------------------------------------------------------------------------------
    def create_service(self, *, tke_config: bool = False) -> str:
        annotations = {"service.cloud.tencent.com/direct-access": "true"}
        if tke_config:
            self.cluster.tke_configs[("default", TKE_CONFIG_NAME)] = self._tke_config(interval_s=5)
            annotations[TKE_CONFIG_ANNOTATION] = TKE_CONFIG_NAME
        service = ServiceInfo(
            namespace="default",
            name="web",
            uid="svc-uid-web",
            resource_version=str(next(self._rv)),
            type="LoadBalancer",
            annotations=annotations,
            selector={"app": "web"},
            ports=[self._service_port(80), self._service_port(81)],
        )
        self.cluster.put_service(service)
        run_step(self.deps, StepRequest(step="service", services=[service.key], reason="chaos setup"))
        self.run_queue(ordered=True)
        return self.lb_id()

    @staticmethod
    def _service_port(port: int) -> ServicePort:
        return ServicePort(name=PORTS[port][0], port=port, target_port=PORTS[port][0])

    def service(self) -> ServiceInfo:
        return self.cluster.services[("default", "web")]

    def service_ports(self) -> list[int]:
        return sorted(p.port for p in self.service().ports)

    def lb_id(self) -> str:
        return self.service().annotations[LB_ID_ANNOTATION]

    def toggle_port(self, port: int = 82) -> None:
        """A Service edit: add the port if it is not there, else remove it."""
        current = self.service()
        ports = [p for p in current.ports if p.port != port]
        if len(ports) == len(current.ports):
            ports.append(self._service_port(port))
        edited = current.model_copy(update={"ports": ports, "resource_version": str(next(self._rv))})
        self.cluster.put_service(edited)
        self._emit_service(edited)

    @staticmethod
    def _tke_config(interval_s: int) -> dict[str, Any]:
        check = {"enable": True, "intervalTime": interval_s, "timeout": 2, "healthNum": 2, "unHealthNum": 2}
        return {
            "apiVersion": "cloud.tencent.com/v1alpha1",
            "kind": "TkeServiceConfig",
            "metadata": {"name": TKE_CONFIG_NAME, "namespace": "default", "uid": "tsc-uid"},
            "spec": {"loadBalancer": {"l4Listeners": [{"protocol": "TCP", "port": 80, "healthCheck": check}]}},
        }

    def edit_tke_config(self, interval_s: int) -> None:
        """A TkeServiceConfig edit: port 80's health-check interval changes."""
        config = self._tke_config(interval_s)
        config["metadata"]["resourceVersion"] = str(next(self._rv))
        self.cluster.tke_configs[("default", TKE_CONFIG_NAME)] = config
        self._hold("MODIFIED", "tkeserviceconfigs", config)

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
            container_ports=[ContainerPort(name=n, container_port=p) for n, p in PORTS.values()],
        )
        self.cluster.put_pod(pod)
        self._emit_pod("ADDED", pod)
        return name

    def update_pod(self, name: str, **changes: Any) -> None:
        pod = self.cluster.update_pod("default", name, resource_version=str(next(self._rv)), **changes)
        self.pod_changes += 1
        self._emit_pod("MODIFIED", pod)

    def terminate_pod(self, name: str) -> None:
        self.update_pod(name, deletion_timestamp="2023-11-14T22:30:00Z")

    def delete_pod(self, name: str) -> None:
        pod = self.cluster.get_pod("default", name)
        if pod is not None:
            self.cluster.remove_pod("default", name)
            self.pod_changes += 1
            self._emit_pod("DELETED", pod.model_copy(update={"resource_version": str(next(self._rv))}))

    def live_pod_names(self) -> list[str]:
        return sorted(n for n in self.pods if self.cluster.get_pod("default", n) is not None)

    # --- events -----------------------------------------------------------------------------------
    @staticmethod
    def pod_object(pod: PodInfo) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "name": pod.name,
            "namespace": pod.namespace,
            "uid": pod.uid,
            "resourceVersion": pod.resource_version,
            "labels": pod.labels,
        }
        if pod.deletion_timestamp:
            meta["deletionTimestamp"] = pod.deletion_timestamp
        gate = pod.condition(GATE_CONDITION_TYPE)
        conditions = [{"type": "ContainersReady", "status": "True" if pod.containers_ready else "False"}]
        if gate is not None:
            conditions.append({"type": GATE_CONDITION_TYPE, "status": gate.status})
        return {
            "kind": "Pod",
            "metadata": meta,
            "spec": {"readinessGates": [{"conditionType": GATE_CONDITION_TYPE}]},
            "status": {"podIP": pod.ip, "phase": pod.phase, "conditions": conditions},
        }

    def _emit_pod(self, watch_type: str, pod: PodInfo) -> None:
        self._hold(watch_type, "pods", self.pod_object(pod))

    def _emit_service(self, service: ServiceInfo) -> None:
        obj = {
            "kind": "Service",
            "metadata": {
                "name": service.name,
                "namespace": service.namespace,
                "uid": service.uid,
                "resourceVersion": service.resource_version,
                "annotations": service.annotations,
            },
            "spec": {"type": service.type, "selector": service.selector},
        }
        self._hold("MODIFIED", "services", obj)

    def _hold(self, watch_type: str, resource: str, obj: dict[str, Any]) -> None:
        if self.rng.random() < self.drop_event_rate:
            self.lost_events += 1
            return
        copies = 2 if self.rng.random() < self.duplicate_event_rate else 1
        self.duplicated_events += copies - 1
        self._held.extend([(watch_type, resource, obj)] * copies)

    def withhold_events(self) -> list[Event]:
        """Take the events not yet delivered, to send them late with `late_events`."""
        events, self._held = self._held, []
        return events

    def late_events(self, events: list[Event]) -> None:
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
            try:
                route_changes(self.deps, changes, RouteResult(correlation_id=f"batch-{next(self._batches)}"))
            except AssertionError:
                raise
            except Exception:
                # The router answered 5xx (store down, API server failing): the relay keeps the batch and
                # sends it again with the next delivery, as the lossless relay does.
                self.router_failures += 1
                self._held.extend(batch)

    def restart_relay(self) -> None:
        """The relay restarts. It kept only the newest event per object (lossless, bounded); either its
        watch resumes from the last resourceVersion and sends those, or the watch expired (410) and it
        relists: one ADDED per live Pod, and the held events are gone."""
        self.relay_restarts += 1
        newest: dict[tuple[str, str], Event] = {}
        for event in self._held:
            newest[(event[1], event[2]["metadata"]["name"])] = event
        if self.rng.random() < 0.5:
            self._held = list(newest.values())
        else:
            self._held = [("ADDED", "pods", self.pod_object(pod)) for pod in self.cluster.pods.values()]

    # --- faults -----------------------------------------------------------------------------------
    def set_faults(self, *rules: FaultRule) -> None:
        for rule in rules:
            self.model.set_fault(rule)

    def end_chaos(self) -> None:
        self.model.clear_faults()
        self.store.rate = 0.0
        self.store.down = False
        self.kube.conflict_rate = self.kube.error_rate = 0.0
        self.queue.duplicate_rate = 0.0
        self.drop_event_rate = self.duplicate_event_rate = 0.0
        self.reorder = False

    def set_health_from_pods(self) -> None:
        """The data plane's verdict: each bound target is Alive or Dead as its Pod's `healthy` says (read and
        set on the model directly: the CLB's own probes make no API calls)."""
        by_ip: dict[str, bool] = {}
        for name, world_pod in self.pods.items():
            pod = self.cluster.get_pod("default", name)
            if pod is not None and pod.deletion_timestamp is None:
                by_ip[world_pod.ip] = world_pod.healthy
        lb_id = self.lb_id()
        for listener in self.model.dataplane_snapshot():
            if listener.lb_id != lb_id:
                continue
            for target in listener.targets:
                detail = "Alive" if by_ip.get(target.ip, False) else "Dead"
                if target.health != detail:
                    self.model.set_target_health(lb_id, listener.listener_id, target.ip, target.port, detail)

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
        service = self.service()
        return [
            p for p in self.cluster.pods.values() if selects(service.selector, p.labels) and ineligibility(p) is None
        ]

    def violations(self) -> list[str]:
        return invariants.end_state_violations(self)


@contextmanager
def chaos_world(seed: int, *, durable_store: bool = False, **config: Any) -> Iterator[World]:
    """A fresh world on a fake clock; the function handlers use its deps for the duration. `durable_store`
    keeps the store in a SQLite file, so a store restart keeps what was written (Redis with persistence)."""
    clock = FakeClock()
    emulator = ClbEmulatorConfig(backend_quota=1000, **config)
    with tempfile.TemporaryDirectory(prefix="clb-chaos-") as scratch:
        store_url = f"sqlite:///{Path(scratch) / 'store.db'}" if durable_store else "memory://"
        with clb_fake(config=emulator, clock=clock.monotonic, wall_clock=clock.now, sleep=clock.sleep) as (model, ep):
            world = World(model, ep, clock, seed, store_url)
            handlers = [importlib.import_module(f"functions.{f}.handler") for f in STEP_FUNCTIONS]
            for handler in handlers:
                handler.shell.use(world.deps)
            try:
                yield world
            finally:
                for handler in handlers:
                    handler.shell.use(None)
                world.store.close()
