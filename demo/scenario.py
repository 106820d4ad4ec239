"""The demo's scenario: a direct-access Service rolled, scaled and disrupted under load, each phase checked.

`run_scenario(stack, options, report)` drives a started `LocalStack` (`demo/stack.py`) through the Kubernetes
API like a user would: apply a TkeServiceConfig (HTTP health check) and a direct-access Service, create a
Deployment, start steady load through the Service's CLB VIP, roll the Deployment to a new version, scale up
and down, delete a Pod, and finally delete the Service. Each phase has an expectation checked against live
state (the Pods through the API, the CLB's targets and their health in the emulator) and the requests seen
while it ran; every phase is recorded in the `RunReport`. Without the gate (`options.gate=False`) only the
rollout is run: the point of that run is the failed requests the rollout causes.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from kubernetes import client, config

from demo.attribution import attribute, summarize
from demo.load import LoadGenerator
from demo.observe import Observer, Snapshot
from demo.report import Phase, RunReport
from demo.stack import LocalStack, wait_until
from shared.domain.models import DIRECT_ACCESS_ANNOTATION, TKE_SERVICE_CONFIG_ANNOTATION, VPC_CNI_NETWORKS_ANNOTATION

APP = "web"
CONFIG_NAME = "web-health"
SERVICE_PORT = 80
CONTAINER_PORT = 8080
# Kubernetes' default grace period. The drain-wait preStop holds an old Pod's containers until its weight 0
# has landed (at most grace - 2 s), so the rollout waits for the drain, not for the grace period; a short
# grace would cut that wait off when the machine is busy (and earn the GracePeriodTooShort Warning).
GRACE_S = 30

# kubernetes ships these two unannotated; typed here as they behave: an ApiClient configured from a kubeconfig
# path, and closing that client's connection pools.
_new_client_from_config = cast("Callable[[str], client.ApiClient]", config.new_client_from_config)
_close_client = cast("Callable[[client.ApiClient], None]", client.ApiClient.close)


@dataclass(frozen=True)
class ScenarioOptions:
    replicas: int = 6
    max_surge: int = 2
    max_unavailable: int = 0
    health_interval: int = 3
    rps: float = 40.0
    seed: int = 7
    gate: bool = True
    cleanup: bool = True  # delete the Service at the end (`--keep` leaves it for the user)
    namespace: str = "default"
    steady_s: float = 4.0
    phase_timeout_s: float | None = None  # None: 120 s, or 2 s per replica for larger Deployments

    @property
    def phase_deadline_s(self) -> float:
        """How long a phase may take: creating, rolling and draining N Pods on one machine grows with N."""
        return self.phase_timeout_s if self.phase_timeout_s is not None else max(120.0, 2.0 * self.replicas)

    def settings(self) -> dict[str, Any]:
        return {
            "replicas": self.replicas,
            "max_surge": self.max_surge,
            "max_unavailable": self.max_unavailable,
            "health_interval_s": self.health_interval,
            "rps": self.rps,
            "seed": self.seed,
            "gate": self.gate,
        }


class PhaseFailed(Exception):
    """A phase did not meet its expectation; the scenario stops there."""


# ------------------------------------------------------------------------------------------------ manifests


def tke_service_config(health_interval: int) -> dict[str, Any]:
    health = {
        "enable": True,
        "intervalTime": health_interval,
        "timeout": 2,
        "healthNum": 2,
        "unHealthNum": 2,
        "checkType": "HTTP",
        "httpCheckPath": "/ready",
        "httpCheckDomain": "web.demo.local",  # the CLB requires a Host for HTTP checks on a TCP listener
        "httpCheckMethod": "GET",
        "httpCode": 2,
        "httpVersion": "HTTP/1.1",
    }
    return {
        "apiVersion": "cloud.tencent.com/v1alpha1",
        "kind": "TkeServiceConfig",
        "metadata": {"name": CONFIG_NAME},
        "spec": {"loadBalancer": {"l4Listeners": [{"protocol": "TCP", "port": SERVICE_PORT, "healthCheck": health}]}},
    }


def service() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": APP,
            "annotations": {DIRECT_ACCESS_ANNOTATION: "true", TKE_SERVICE_CONFIG_ANNOTATION: CONFIG_NAME},
        },
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": APP},
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def deployment(options: ScenarioOptions, version: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": APP},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": APP}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": options.max_surge, "maxUnavailable": options.max_unavailable},
            },
            "template": {
                # VPC-CNI Pods: direct access needs ENI IPs (GlobalRouter Pods would need the cluster switch).
                "metadata": {"labels": {"app": APP}, "annotations": {VPC_CNI_NETWORKS_ANNOTATION: "tke-route-eni"}},
                "spec": {
                    "terminationGracePeriodSeconds": GRACE_S,
                    "containers": [
                        {
                            "name": APP,
                            "image": f"example/web:{version}",
                            "env": [{"name": "VERSION", "value": version}],
                            "ports": [{"name": "http", "containerPort": CONTAINER_PORT}],
                        }
                    ],
                },
            },
        },
    }


# ------------------------------------------------------------------------------------------------ the run


class Scenario:
    def __init__(self, stack: LocalStack, options: ScenarioOptions, report: RunReport) -> None:
        assert stack.clb is not None
        self.stack, self.options, self.report = stack, options, report
        self.random = random.Random(options.seed)
        self.api = _new_client_from_config(str(stack.kubeconfig))
        self.core, self.apps = client.CoreV1Api(self.api), client.AppsV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.observer = Observer(
            self.api,
            stack.clb.model,
            namespace=options.namespace,
            service=APP,
            selector=f"app={APP}",
            report=report,
        )
        self.load: LoadGenerator | None = None
        self.replicas = options.replicas
        self.version = "v1"

    # -------------------------------------------------------------------------------------------- helpers

    def current_phase(self) -> Phase | None:
        return self.report.phases[-1] if self.report.phases else None

    def _phase(self, name: str, expectation: str, body: Callable[[], str], *, zero_failures: bool = True) -> None:
        phase = Phase(name=name, started=time.time(), expectation=expectation)
        self.report.phases.append(phase)
        self.observer.phase = name
        try:
            detail = body()
            met = True
        except PhaseFailed as exc:
            detail, met = str(exc), False
        phase.ended = time.time()
        if self.load is not None:
            phase.requests_ok, phase.requests_failed = self.load.between(phase.started, phase.ended)
        if met and zero_failures and phase.requests_failed:
            met = False
            detail = f"{detail}; but {phase.requests_failed} requests failed"
        phase.met, phase.detail = met, detail
        if not met:
            raise PhaseFailed(f"{name}: {detail}")

    def _until(self, what: str, probe: Callable[[Snapshot], str | None], timeout_s: float | None = None) -> str:
        """Poll live state until `probe` returns a description (the phase is met) or time runs out."""
        last: list[Snapshot] = []

        asked = time.time()

        def check() -> str | None:
            snap = self.observer.next_snapshot(last[0].t if last else asked)
            last[:] = [snap]
            return probe(snap)

        result = wait_until(check, timeout_s or self.options.phase_deadline_s, interval_s=0.0)
        if result is None:
            snap = last[0] if last else None
            state = (
                f"pods={[(p.name, p.version, p.ready, p.gate, p.terminating) for p in snap.pods]} "
                f"backends={[(b.ip, b.weight, b.health) for b in snap.backends]}"
                if snap
                else "no snapshot"
            )
            raise PhaseFailed(f"timed out waiting for {what}; last state: {state}")
        return str(result)

    def converged(self, snap: Snapshot, version: str, count: int, *, drained: bool = False) -> str | None:
        """`count` live Pods of `version`, all Ready (gate True when gated) and exactly them serving on the CLB."""
        live = snap.live_pods()
        wanted = [p for p in live if p.version == version]
        if len(live) != count or len(wanted) != count or not all(p.ready and p.ip for p in wanted):
            return None
        if self.options.gate and not all(p.gate for p in wanted):
            return None
        ips = {p.ip for p in wanted}
        if snap.serving_ips() != ips:
            return None
        if drained and snap.registered_ips() != ips:
            return None
        return f"{count} {version} Pods Ready, bound and healthy on {snap.lb_id}"

    # -------------------------------------------------------------------------------------------- phases

    def apply_service(self) -> str:
        ns = self.options.namespace
        group, version, plural = "cloud.tencent.com", "v1alpha1", "tkeserviceconfigs"
        self.custom.create_namespaced_custom_object(
            group, version, ns, plural, tke_service_config(self.options.health_interval)
        )
        # The client validates a create body into its model class anyway; doing it here keeps the call typed.
        self.core.create_namespaced_service(ns, client.V1Service.model_validate(service()))

        def ready(snap: Snapshot) -> str | None:
            if not snap.lb_id or not snap.vip:
                return None
            assert self.stack.clb is not None
            checks = [v.health_check for v in self.stack.clb.model.dataplane_snapshot() if v.lb_id == snap.lb_id]
            if len(checks) != 1 or checks[0].get("CheckType") != "HTTP":
                return None
            interval = checks[0]["IntervalTime"]
            return f"CLB {snap.lb_id} at {snap.vip}:{SERVICE_PORT}, HTTP health check every {interval} s"

        return self._until("the CLB with its listener and HTTP health check", ready)

    def create_deployment(self) -> str:
        body = client.V1Deployment.model_validate(deployment(self.options, self.version, self.replicas))
        self.apps.create_namespaced_deployment(self.options.namespace, body)
        detail = self._until(
            "every Pod bound, healthy and Ready", lambda s: self.converged(s, self.version, self.replicas)
        )
        if self.options.gate and not all(p.gate is not None for p in self.observer.latest.live_pods()):
            raise PhaseFailed("Pods were created without the readiness gate: the admission webhook did not run")
        return detail

    def steady_load(self) -> str:
        vip = self.observer.latest.vip
        assert vip is not None
        self.load = LoadGenerator(vip, SERVICE_PORT, rps=self.options.rps)
        self.load.start()
        self.report.stats["load_started_at"] = self.load.started_at
        time.sleep(self.options.steady_s)
        ok, _ = self.load.between(self.load.started_at, time.time())
        if ok == 0:
            raise PhaseFailed(f"no request through {vip}:{SERVICE_PORT} succeeded")
        return f"{ok} requests answered through {vip}:{SERVICE_PORT}"

    def rolling_update(self) -> str:
        self.version = "v2"
        self.apps.patch_namespaced_deployment(
            APP, self.options.namespace, deployment(self.options, self.version, self.replicas)
        )
        return self._until(f"the rollout to {self.version}", lambda s: self.converged(s, self.version, self.replicas))

    def scale(self, replicas: int) -> str:
        self.replicas = replicas
        self.apps.patch_namespaced_deployment_scale(APP, self.options.namespace, {"spec": {"replicas": replicas}})
        return self._until(f"{replicas} replicas", lambda s: self.converged(s, self.version, replicas, drained=True))

    def delete_pod(self) -> str:
        victim = self.random.choice(self.observer.snapshot().live_pods())
        self.core.delete_namespaced_pod(victim.name, self.options.namespace)

        def replaced(snap: Snapshot) -> str | None:
            if any(p.name == victim.name for p in snap.pods) or victim.ip in snap.registered_ips():
                return None
            return self.converged(snap, self.version, self.replicas, drained=True)

        detail = self._until(f"{victim.name} replaced and deregistered", replaced)
        return f"deleted {victim.name} ({victim.ip}); {detail}"

    def stop_load(self) -> None:
        if self.load is not None:
            self.load.stop()
            self.report.stats["load_stopped_at"] = time.time()

    def delete_service(self) -> str:
        lb_id = self.observer.snapshot().lb_id
        self.stop_load()
        self.core.delete_namespaced_service(APP, self.options.namespace)
        assert self.stack.settings is not None
        from shared.adapters.tencent_clb import TencentClbGateway

        gateway = TencentClbGateway.from_settings(self.stack.settings)

        def cleaned(snap: Snapshot) -> str | None:
            if lb_id is None or gateway.describe_load_balancer(lb_id) is not None:
                return None
            pods = snap.live_pods()
            if self.options.gate and not all(p.gate and p.ready for p in pods):
                return None
            released = " with their gate released" if self.options.gate else ""
            return f"CLB {lb_id} deleted; {len(pods)} Pods keep running{released}"

        return self._until("the CLB deleted and the gates released", cleaned)

    # -------------------------------------------------------------------------------------------- driver

    def run(self) -> RunReport:
        self.observer.start()
        n = self.options.replicas
        try:
            self._phase(
                "apply Service", "the CLB exists with one listener and the HTTP health check", self.apply_service
            )
            self._phase(
                "create Deployment",
                f"{n} Pods bound on the CLB, healthy and Ready" + (" (gate True)" if self.options.gate else ""),
                self.create_deployment,
            )
            self._phase("steady load", "every request through the CLB VIP succeeds", self.steady_load)
            self._phase(
                "rolling update",
                "every Pod replaced by v2 under load, zero failed requests"
                if self.options.gate
                else "every Pod replaced by v2 (without the gate, failures are expected: old Pods are retired "
                "before the CLB health check passes for their replacements)",
                self.rolling_update,
                zero_failures=self.options.gate,
            )
            if self.options.gate:
                up = n + max(1, n // 2)
                self._phase(f"scale to {up}", f"{up} Pods serving, zero failed requests", lambda: self.scale(up))
                self._phase(
                    f"scale to {n}", f"{n} Pods serving, the rest drained and deregistered", lambda: self.scale(n)
                )
                self._phase("delete a Pod", "replaced, the old one deregistered, zero failed requests", self.delete_pod)
            if not self.options.cleanup:
                return self.report
            self._phase(
                "delete Service",
                "the CLB is deleted and every gate released",
                self.delete_service,
                zero_failures=False,
            )
        except PhaseFailed:
            pass
        finally:
            self.stop_load()
            self.observer.stop()
            _close_client(self.api)
            self._finish()
        return self.report

    def _finish(self) -> None:
        if self.load is None:
            return
        self.report.traffic = {
            second: {"ok": bucket.ok, "failed": bucket.failed} for second, bucket in sorted(self.load.seconds.items())
        }
        self.report.errors = dict(self.load.errors())
        if self.load.failures and self.stack.clb is not None:
            connections = self.stack.clb.dataplane.proxy.connections(since=self.load.started_at - 1.0)
            attributed = attribute(self.load.failures, connections, list(self.observer.history))
            self.report.failures = [f.to_dict() for f in attributed]
            self.report.failure_summary = summarize(attributed)
        runtime = self.stack.runtime_stats()
        self.report.stats["runtime"] = {
            "invocations": runtime["invocations"],
            "errors": runtime["errors"],
            "dead_letters": len(runtime["dead_letters"]),
            "queue": runtime["queue"],
        }


def run_scenario(stack: LocalStack, options: ScenarioOptions, report: RunReport) -> RunReport:
    return Scenario(stack, options, report).run()
