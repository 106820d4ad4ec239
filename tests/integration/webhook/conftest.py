"""Fixtures for the webhook path through the real stack: simulator, guardian, admission over HTTPS.

The cluster simulator's API server calls MutatingWebhookConfiguration webhooks on Pod CREATE,
verifying the endpoint against the configuration's caBundle. The `admission` function runs in the
local runtime behind HTTPS on a port chosen before the guardian runs (the guardian needs the URL to
issue the serving certificate); the runtime's TLS provider reads the guardian's Secret, so a new or
rotated certificate reaches the endpoint the way it would on SCF. The guardian runs through its own
handler with dependencies injected (`handler.shell.use`), so each run can carry its own clock and
settings (failure policy, rotation window).
"""

from __future__ import annotations

import errno
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from emulators.clb.config import ClbEmulatorConfig
from emulators.clb.responses_transport import clb_fake
from emulators.cluster.simulator import ClusterSimulator
from emulators.runtime.runtime import FunctionSpec, LocalRuntime
from functions.admission import handler as admission_handler
from functions.guardian import handler as guardian_handler
from shared.adapters.kubernetes_api import KubernetesCluster
from shared.adapters.store_factory import open_store
from shared.adapters.tencent_clb import TencentClbGateway
from shared.certs import TLS_CERT, TLS_KEY
from shared.clock import SystemClock
from shared.config import Settings
from shared.deps import Deps
from shared.domain.models import GATE_CONDITION_TYPE, ObjectKey, StepRequest
from shared.ports import Clock, Store
from shared.steps import run_step
from tests.support.fakes import StepQueue
from tests.support.net import free_port

NS = "default"
DIRECT_ACCESS = "service.cloud.tencent.com/direct-access"


def has_gate(pod: client.V1Pod) -> bool:
    return any(g.condition_type == GATE_CONDITION_TYPE for g in pod.spec.readiness_gates or [])


def condition(pod: client.V1Pod, kind: str) -> client.V1PodCondition | None:
    return next((c for c in (pod.status.conditions if pod.status else None) or [] if c.type == kind), None)


@dataclass
class WebhookStack:
    sim: ClusterSimulator
    api: client.ApiClient
    cluster: KubernetesCluster
    store: Store
    store_url: str
    runtime: LocalRuntime
    port: int
    guardian_runs: list[dict[str, Any]] = field(default_factory=list)
    runtime_running: bool = True

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @property
    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api)

    @property
    def admissionregistration(self) -> client.AdmissionregistrationV1Api:
        return client.AdmissionregistrationV1Api(self.api)

    @property
    def webhook_url(self) -> str:
        return f"https://127.0.0.1:{self.port}/admission"

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "store_url": self.store_url,
            "kubeconfig": str(self.sim.kubeconfig_path),
            "webhook_url": self.webhook_url,
            "cluster_id": "cls-test",
            "vpc_id": "vpc-test",
        }
        return Settings.load({}, **{**values, **overrides})

    # ------------------------------------------------------------------------------------ guardian

    def run_guardian(self, clock: Clock | None = None, **overrides: Any) -> dict[str, Any]:
        """One timer-triggered guardian invocation through its handler; returns the step's result."""
        deps = Deps(settings=self.settings(**overrides), store=self.store, clock=clock or SystemClock())
        deps.cluster = self.cluster
        guardian_handler.shell.use(deps)
        outcome = guardian_handler.main_handler(
            {"Type": "Timer", "TriggerName": "guardian-every-5m", "Time": "2024-01-01T00:00:00Z", "Message": ""},
            {"request_id": f"guardian-{len(self.guardian_runs) + 1}"},
        )
        assert outcome["ok"], outcome
        self.guardian_runs.append(outcome)
        result: dict[str, Any] = outcome["result"]
        return result

    def bring_up(self, clock: Clock | None = None, **overrides: Any) -> dict[str, Any]:
        """First guardian run, then the admission endpoint on the pre-chosen port (re-chosen if taken)."""
        for _ in range(5):
            result = self.run_guardian(clock, **overrides)
            try:
                self.runtime.start_https(self.port)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                self.port = free_port()  # lost the port to another process: the next guardian run moves the URL
                continue
            return result
        raise AssertionError("no free port for the admission endpoint after 5 attempts")

    def stop_endpoint(self) -> None:
        self.runtime.stop()
        self.runtime_running = False

    # ------------------------------------------------------------------------------------ reading state

    def secret(self) -> dict[str, str]:
        found = self.cluster.get_secret("kube-system", "clb-direct-webhook-tls")
        assert found is not None, "the guardian's Secret exists"
        return found

    def webhook(self) -> dict[str, Any]:
        found = self.cluster.get_mutating_webhook_configuration("clb-direct-readiness-gate")
        assert found is not None, "the MutatingWebhookConfiguration exists"
        return found

    def served_certificate(self) -> str:
        """The PEM certificate the admission endpoint presents right now."""
        return ssl.get_server_certificate(("127.0.0.1", self.port), timeout=10)

    # ------------------------------------------------------------------------------------ workloads

    def create_pod(self, name: str, labels: Mapping[str, str] | None = None, **spec: Any) -> client.V1Pod:
        """Create a bare Pod; the create response is the admitted object (mutation is synchronous)."""
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": dict(labels if labels is not None else {"app": "web"})},
            "spec": {"containers": [{"name": "web", "image": "example/web:1", "ports": [{"containerPort": 8080}]}]}
            | spec,
        }
        pod: client.V1Pod = self.core.create_namespaced_pod(NS, body)
        return pod

    def direct_access_service(self, name: str = "web", selector: Mapping[str, str] | None = None) -> StepQueue:
        """Create a direct-access Service and run the service step (CLB: the `clb_fake` emulator model).

        The service step puts the Service's selector in the selector index the admission step reads.
        """
        self.core.create_namespaced_service(
            NS,
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "annotations": {DIRECT_ACCESS: "true"}},
                "spec": {
                    "type": "LoadBalancer",
                    "selector": dict(selector or {"app": "web"}),
                    "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
                },
            },
        )
        invoker = StepQueue()
        with clb_fake(config=ClbEmulatorConfig(task_duration_s=0)) as (_model, endpoint):
            settings = self.settings(clb_endpoint=endpoint, secret_id="AKIDtest", secret_key="test-key")
            clock = SystemClock()
            deps = Deps(
                settings=settings,
                store=self.store,
                clock=clock,
                clb=TencentClbGateway.from_settings(settings, store=self.store, clock=clock),
                cluster=self.cluster,
                invoker=invoker,
            )
            run_step(deps, StepRequest(step="service", services=[ObjectKey(namespace=NS, name=name)]))
        return invoker


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[WebhookStack]:
    store_url = f"sqlite:///{tmp_path / 'state.db'}"
    store = open_store(store_url)
    sim = ClusterSimulator(kubeconfig_path=tmp_path / "kubeconfig", start_delay_s=0.1, max_grace_s=1.0)
    with sim:
        api = config.new_client_from_config(config_file=str(sim.kubeconfig_path))
        cluster = KubernetesCluster.from_settings(Settings.load({}, kubeconfig=str(sim.kubeconfig_path)))
        reader = KubernetesCluster.from_settings(Settings.load({}, kubeconfig=str(sim.kubeconfig_path)))

        def guardian_certificate() -> tuple[bytes, bytes] | None:
            # The runtime's reload thread calls this every ~2 s: a client of its own, never shared.
            data = reader.get_secret("kube-system", "clb-direct-webhook-tls") or {}
            if not data.get(TLS_CERT) or not data.get(TLS_KEY):
                return None
            return data[TLS_CERT].encode(), data[TLS_KEY].encode()

        runtime = LocalRuntime(
            functions=[FunctionSpec("admission", memory_mb=128, timeout_s=10)],
            tls_provider=guardian_certificate,
            workers=1,
        )
        stack = WebhookStack(sim, api, cluster, store, store_url, runtime, free_port())
        # Admission has its own store connection and builds its Kubernetes client lazily (cold selector
        # index), as its SCF container would; `release()` closes both.
        admission_handler.shell.use(Deps(settings=stack.settings(), store=open_store(store_url), clock=SystemClock()))
        runtime.start()
        try:
            yield stack
        finally:
            if stack.runtime_running:
                runtime.stop()
            admission_handler.shell.release()
            guardian_handler.shell.use(None)
            reader.close()
            cluster.close()
            api.close()
    store.close()
