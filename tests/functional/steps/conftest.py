"""Harness for the step functions end to end: real CLB adapter + emulator model, fake cluster, SQLite.

Handlers are driven with JSON events from tests/events/; their follow-up invocations queue on a
`StepQueue` and run through the handlers again when the test says so.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from emulators.clb.config import ClbEmulatorConfig
from emulators.clb.model import ClbModel
from emulators.clb.responses_transport import clb_fake
from shared.adapters.store_factory import open_store
from shared.adapters.tencent_clb import TencentClbGateway
from shared.clock import FakeClock
from shared.config import Settings
from shared.deps import Deps
from shared.domain.models import GATE_CONDITION_TYPE, ContainerPort, PodInfo, ServiceInfo, ServicePort
from shared.schedule import drain_schedule
from tests.conftest import load_event
from tests.support.fakes import FakeCluster, StepQueue

FUNCTIONS = ("service", "bind", "unbind", "flip", "guardian", "admission", "prestop")
WRITE_ACTIONS = (
    "BatchRegisterTargets",
    "BatchDeregisterTargets",
    "BatchModifyTargetWeight",
    "CreateListener",
    "ModifyListener",
    "DeleteListener",
    "CreateLoadBalancer",
    "DeleteLoadBalancer",
)


def handler(function: str) -> Any:
    return importlib.import_module(f"functions.{function}.handler")


@dataclass
class Env:
    deps: Deps
    cluster: FakeCluster
    clb: ClbModel
    queue: StepQueue
    clock: FakeClock

    def invoke(self, function: str, event: Any) -> Any:
        if isinstance(event, str):
            event = load_event(event)
        return handler(function).main_handler(event, {"request_id": "test", "function_name": function})

    def drain(self, *, delayed: bool = False, rounds: int = 10) -> list[tuple[str, Any]]:
        """Run the queued invocations; `delayed=True` then also lets (fake) time pass to each scheduled
        item's due time and drains the schedule as the timers do, until nothing is scheduled."""
        results = self.queue.run(self.invoke)
        while delayed and rounds > 0 and (due := self.deps.store.schedule_list(limit=1)):
            rounds -= 1
            self.clock.advance(max(0.0, due[0].due_at - self.clock.now()))
            drain_schedule(self.deps)
            results += self.queue.run(self.invoke)
        return results

    def counts(self) -> dict[str, int]:
        return dict(self.clb.calls()["counts"])

    def writes(self) -> dict[str, int]:
        return {k: v for k, v in self.counts().items() if k in WRITE_ACTIONS}

    def lb_id(self, namespace: str = "default", name: str = "web") -> str:
        return self.cluster.services[(namespace, name)].annotations["service.kubernetes.io/loadbalance-id"]

    def targets(self, lb_id: str) -> set[tuple[str, int, int]]:
        return {(t.ip, t.port, t.weight) for t in self.deps.require_clb().list_targets(lb_id)}

    def set_health(self, lb_id: str, ip: str, port: int, detail: str = "Alive") -> None:
        for listener in self.deps.require_clb().list_listeners(lb_id):
            self.clb.set_target_health(lb_id, listener.listener_id, ip, port, detail)

    def gate(self, name: str, namespace: str = "default") -> tuple[str, str, str] | None:
        condition = self.cluster.gate(namespace, name)
        return None if condition is None else (condition.status, condition.reason or "", condition.message or "")


def service(
    name: str = "web",
    *,
    selector: dict[str, str] | None = None,
    ports: list[ServicePort] | None = None,
    **annotations: str,
) -> ServiceInfo:
    return ServiceInfo(
        namespace="default",
        name=name,
        uid=f"svc-uid-{name}",
        type="LoadBalancer",
        annotations={"service.cloud.tencent.com/direct-access": "true", **annotations},
        selector=selector or {"app": "web"},
        ports=ports or [ServicePort(name="http", port=80, target_port="http")],
    )


def pod(name: str, ip: str, *, labels: dict[str, str] | None = None, owner: str = "web-rs1", **changes: Any) -> PodInfo:
    base: dict[str, Any] = {
        "namespace": "default",
        "name": name,
        "uid": f"uid-{name}",
        "labels": labels or {"app": "web"},
        "ip": ip,
        "phase": "Running",
        "containers_ready": True,
        "creation_timestamp": "2023-11-14T22:13:20Z",
        "readiness_gates": [GATE_CONDITION_TYPE],
        "owner_kind": "ReplicaSet",
        "owner_name": owner,
        "annotations": {"tke.cloud.tencent.com/networks": "tke-route-eni"},
        "container_ports": [ContainerPort(name="http", container_port=8080)],
    }
    base["annotations"] = {**base["annotations"], **changes.pop("annotations", {})}
    base.update(changes)
    return PodInfo(**base)


def make_settings(endpoint: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "clb_endpoint": endpoint,
        "secret_id": "AKIDtest",
        "secret_key": "test-key",
        "store_url": "memory://",
        "cluster_id": "cls-test",
        "vpc_id": "vpc-test",
        "webhook_url": "https://127.0.0.1:8443/admission",
        "clb_call_deadline_s": 5.0,
    }
    values.update(overrides)
    return Settings.load({}, **values)


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Override with `@pytest.mark.parametrize("settings_overrides", [...], indirect=True)`."""
    return dict(getattr(request, "param", {}))


@pytest.fixture
def env(settings_overrides: dict[str, Any]) -> Iterator[Env]:
    clock = FakeClock()
    # The emulator keeps the test's time too: its rate limits hold, and a throttled call's backoff
    # (clock.sleep) really lets the window pass instead of retrying within one real millisecond.
    with clb_fake(config=ClbEmulatorConfig(task_duration_s=0), clock=clock.monotonic) as (model, endpoint):
        settings = make_settings(endpoint, **settings_overrides)
        store = open_store("memory://")
        cluster = FakeCluster()
        queue = StepQueue()
        gateway = TencentClbGateway.from_settings(settings, clock=clock)
        deps = Deps(settings=settings, store=store, clock=clock, clb=gateway, cluster=cluster, invoker=queue)
        for function in FUNCTIONS:
            handler(function).shell.use(deps)
        try:
            yield Env(deps=deps, cluster=cluster, clb=model, queue=queue, clock=clock)
        finally:
            for function in FUNCTIONS:
                handler(function).shell.use(None)
            store.close()
