"""The whole event path against the simulators: relay -> router -> steps -> CLB -> gate -> rollout.

The cluster simulator serves the real `kubernetes` client (relay watches, the Kubernetes adapter);
the CLB emulator model sits behind the real CLB SDK (`clb_fake`); the router runs behind an HTTP
server; dispatched steps run on worker threads (the Invoker); a small "health checker" marks every
bound target Alive and runs the health poll, which flips the gates. A Deployment whose Pods carry the
readiness gate can only roll forward if every link works: each new Pod must be bound, found healthy
and have its gate set True before the next one is created.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from emulators.clb.config import ClbEmulatorConfig
from emulators.clb.model import ClbModel
from emulators.clb.responses_transport import clb_fake
from emulators.cluster.simulator import ClusterSimulator
from relay.app import Relay
from relay.auth import AuditAuth
from relay.batcher import Batcher, BatcherConfig
from shared.adapters.kubernetes_api import KubernetesCluster
from shared.adapters.store_factory import open_store
from shared.adapters.tencent_clb import TencentClbGateway
from shared.clock import SystemClock
from shared.config import Settings
from shared.deps import Deps
from shared.domain.errors import RetryableError
from shared.domain.models import GATE_CONDITION_TYPE, StepRequest
from shared.health import poll_pending
from shared.reconcile import handle_step_request
from shared.steps import run_step
from tests.integration.plumbing.conftest import HMAC_KEY, RouterServer
from tests.manifests import web_deployment
from tests.support.polling import eventually

NS = "default"


class WorkerInvoker:
    """Runs dispatched steps on worker threads, retrying retryable failures a few times."""

    def __init__(self, workers: int = 3) -> None:
        self._queue: queue.Queue[tuple[str, dict[str, Any], int] | None] = queue.Queue()
        self._threads = [threading.Thread(target=self._work, daemon=True) for _ in range(workers)]
        self.deps: Deps | None = None
        self.errors: list[str] = []

    def invoke_async(self, function: str, payload: Mapping[str, Any]) -> str:
        self._queue.put((function, dict(payload), 0))
        return "queued"

    def start(self, deps: Deps) -> None:
        self.deps = deps
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(30)

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            function, payload, attempt = item
            assert self.deps is not None
            request = StepRequest.model_validate({**payload, "step": function})
            try:
                if function == "reconcile":
                    handle_step_request(self.deps, request)
                else:
                    run_step(self.deps, request)
            except RetryableError as exc:
                if attempt < 20:
                    threading.Event().wait(min(exc.delay_s, 0.3))
                    self._queue.put((function, payload, attempt + 1))
                else:
                    self.errors.append(f"{function}: {exc.message}")
            except Exception as exc:  # recorded so the test can show what broke
                self.errors.append(f"{function}: {type(exc).__name__}: {exc}")


class HealthChecker:
    """Marks every bound target Alive on the CLB model, then runs the health poll (timer)."""

    def __init__(self, model: ClbModel, deps: Deps) -> None:
        self._model, self._deps = model, deps
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            for binding in self._deps.store.list_bindings():
                self._model.set_target_health(binding.lb_id, binding.listener_id, binding.ip, binding.port, "Alive")
            poll_pending(self._deps)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


@dataclass
class Stack:
    sim: ClusterSimulator
    deps: Deps
    api: client.ApiClient
    invoker: WorkerInvoker


def _deployment(version: str) -> dict[str, Any]:
    # VPC-CNI Pods (the ENI annotation): GlobalRouter ones would need the cluster switch.
    return web_deployment(
        version,
        pod_annotations={"tke.cloud.tencent.com/networks": "tke-route-eni"},
        readiness_gates=[GATE_CONDITION_TYPE],
        port_name="http",
    )


SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web", "annotations": {"service.cloud.tencent.com/direct-access": "true"}},
    "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]},
}


@pytest.fixture(params=["watch", "audit"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    source = request.param
    with clb_fake(config=ClbEmulatorConfig(task_duration_s=0, rate_limit_per_s=10_000)) as (model, endpoint):
        store_url = f"sqlite:///{tmp_path / 'state.db'}"
        invoker = WorkerInvoker()
        store = open_store(store_url)
        deps = Deps(
            settings=Settings.load({}, relay_hmac_key=HMAC_KEY, store_url=store_url), store=store, invoker=invoker
        )
        router = RouterServer(deps).start()
        batcher = Batcher(BatcherConfig(router_url=router.url, hmac_key=HMAC_KEY.encode(), batch_size=50, window_s=0.2))
        token = "e2e-audit-token"  # the API server's audit webhook kubeconfig token
        relay = (
            Relay(batcher=batcher, sources=["audit"], audit_auth=AuditAuth(token=token)) if source == "audit" else None
        )
        if relay is not None:
            relay.start()
        sim = ClusterSimulator(
            kubeconfig_path=tmp_path / "kubeconfig",
            start_delay_s=0.1,
            max_grace_s=1.0,
            audit_url=f"{relay.url}/audit" if relay is not None else None,
            audit_batch_wait_s=0.2,
            audit_token=token,
        )
        with sim:
            settings = Settings.load(
                {},
                clb_endpoint=endpoint,
                secret_id="AKIDtest",
                secret_key="test-key",
                store_url=store_url,
                kubeconfig=str(sim.kubeconfig_path),
                relay_hmac_key=HMAC_KEY,
                cluster_id="cls-test",
                vpc_id="vpc-test",
                drain_timeout_s=1.0,
                clb_call_deadline_s=10.0,
            )
            deps.settings = settings
            deps.clb = TencentClbGateway.from_settings(settings, store=store, clock=deps.clock)
            deps.cluster = KubernetesCluster.from_settings(settings, clock=SystemClock())
            invoker.start(deps)
            api = config.new_client_from_config(config_file=str(sim.kubeconfig_path))
            if relay is None:
                relay = Relay(batcher=batcher, sources=["watch"], api_client=api, watch_timeout_s=5)
                relay.start()
            checker = HealthChecker(model, deps)
            checker.start()
            try:
                yield Stack(sim=sim, deps=deps, api=api, invoker=invoker)
            finally:
                checker.stop()
                relay.stop()
                invoker.stop()
                api.close()
        router.stop()
        store.close()


def _ready_pods(core: client.CoreV1Api, version: str) -> dict[str, str] | None:
    pods = [
        p
        for p in core.list_namespaced_pod(NS, label_selector="app=web").items
        if p.metadata.deletion_timestamp is None and p.spec.containers[0].env[0].value == version
    ]
    ready = {
        p.metadata.name: p.status.pod_ip
        for p in pods
        if any(c.type == GATE_CONDITION_TYPE and c.status == "True" for c in p.status.conditions or [])
        and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
    }
    return ready if len(ready) == 2 and len(pods) == 2 else None


def _targets(stack: Stack) -> set[tuple[str, int, int]]:
    service = stack.deps.require_cluster().get_service(NS, "web")
    assert service is not None
    lb_id = service.annotations.get("service.kubernetes.io/loadbalance-id")
    assert lb_id, "the service step wrote the CLB id"
    return {(t.ip, t.port, t.weight) for t in stack.deps.require_clb().list_targets(lb_id)}


def test_rolling_update_reaches_the_right_backends_and_gates(stack: Stack) -> None:
    core, apps = client.CoreV1Api(stack.api), client.AppsV1Api(stack.api)
    core.create_namespaced_service(NS, SERVICE)
    apps.create_namespaced_deployment(NS, _deployment("v1"))
    first = eventually(
        lambda: _ready_pods(core, "v1"), f"two v1 Pods gated True and Ready ({stack.invoker.errors})", 60
    )
    eventually(
        lambda: _targets(stack) == {(ip, 8080, 10) for ip in first.values()}, "CLB backends = the v1 Pod IPs", 30
    )
    apps.patch_namespaced_deployment("web", NS, _deployment("v2"))
    second = eventually(lambda: _ready_pods(core, "v2"), f"rollout to v2 ({stack.invoker.errors})", 90)
    eventually(
        lambda: _targets(stack) == {(ip, 8080, 10) for ip in second.values()}, "CLB backends = the v2 Pod IPs", 30
    )
