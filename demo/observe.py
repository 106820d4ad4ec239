"""What the demo watches: Pods (phase, Ready, gate, version) and CLB backends (health, weight), sampled live.

`Observer` runs on its own thread while the scenario (`demo/scenario.py`) drives the stack; every tick it
lists the Service's Pods through the Kubernetes API, reads the CLB's listeners and targets from the emulator
model, keeps the latest `Snapshot` for the terminal view (`demo/view.py`) and appends a `Sample` to the run's
report. The scenario's expectations are checked against fresh snapshots taken with `snapshot()`.
"""

from __future__ import annotations

import collections
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, cast

from kubernetes import client

from demo.report import RunReport, Sample
from emulators.clb.model import ClbModel
from shared.domain.models import GATE_CONDITION_TYPE, LB_ID_ANNOTATION

HISTORY_SIZE = 4000  # 0.5 s ticks: about half an hour


@dataclass(frozen=True)
class PodView:
    name: str
    phase: str
    ready: bool
    gate: bool | None  # None: the Pod has no readiness gate
    version: str
    ip: str
    terminating: bool


@dataclass(frozen=True)
class BackendView:
    ip: str
    port: int
    weight: int
    health: str

    @property
    def serving(self) -> bool:
        return self.weight > 0 and self.health == "Alive"


@dataclass
class Snapshot:
    t: float
    pods: list[PodView] = field(default_factory=list)
    backends: list[BackendView] = field(default_factory=list)
    lb_id: str | None = None
    vip: str | None = None

    def live_pods(self, version: str | None = None) -> list[PodView]:
        return [p for p in self.pods if not p.terminating and (version is None or p.version == version)]

    def serving_ips(self) -> set[str]:
        return {b.ip for b in self.backends if b.serving}

    def registered_ips(self) -> set[str]:
        return {b.ip for b in self.backends}


def _condition(pod: dict[str, Any], kind: str) -> bool | None:
    for condition in pod.get("status", {}).get("conditions") or []:
        if condition.get("type") == kind:
            return bool(condition.get("status") == "True")
    return None


def _version(pod: dict[str, Any]) -> str:
    containers = pod.get("spec", {}).get("containers") or [{}]
    for env in containers[0].get("env") or []:
        if env.get("name") == "VERSION":
            return str(env.get("value"))
    return "?"


def pod_view(pod: dict[str, Any]) -> PodView:
    """A Pod as the API serves it (JSON): the client's typed models cost twice the CPU to build, and the
    demo lists every Pod several times a second in the process that also runs the cluster and the CLB."""
    metadata, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
    gated = any(g.get("conditionType") == GATE_CONDITION_TYPE for g in spec.get("readinessGates") or [])
    return PodView(
        name=str(metadata.get("name", "")),
        phase=str(status.get("phase") or "Pending"),
        ready=bool(_condition(pod, "Ready")),
        gate=bool(_condition(pod, GATE_CONDITION_TYPE)) if gated else None,
        version=_version(pod),
        ip=str(status.get("podIP") or ""),
        terminating=metadata.get("deletionTimestamp") is not None,
    )


class Observer:
    """Samples the cluster and the CLB every `interval_s` on a background thread."""

    def __init__(
        self,
        api: client.ApiClient,
        model: ClbModel,
        *,
        namespace: str,
        service: str,
        selector: str,
        report: RunReport,
        interval_s: float = 0.5,
    ) -> None:
        self._core = client.CoreV1Api(api)
        self._model = model
        self._namespace, self._service, self._selector = namespace, service, selector
        self._report = report
        self._interval_s = interval_s
        self._lock = threading.Condition()
        self._latest = Snapshot(t=time.time())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.phase = ""
        # Recent snapshots, for attributing failed requests to the Pod and weight of their backend then.
        self.history: collections.deque[Snapshot] = collections.deque(maxlen=HISTORY_SIZE)

    @property
    def latest(self) -> Snapshot:
        with self._lock:
            return self._latest

    def snapshot(self) -> Snapshot:
        listed = self._core.list_namespaced_pod(self._namespace, label_selector=self._selector, _preload_content=False)
        # Unparsed (_preload_content=False) the client answers with the urllib3 response, not a V1PodList.
        pods: list[dict[str, Any]] = json.loads(cast(Any, listed).data).get("items") or []
        lb_id, vip = self._service_lb()
        backends: list[BackendView] = []
        for listener in self._model.dataplane_snapshot():
            if listener.lb_id == lb_id:
                backends.extend(BackendView(t.ip, t.port, t.weight, t.health) for t in listener.targets)
        snap = Snapshot(
            t=time.time(),
            pods=sorted((pod_view(p) for p in pods), key=lambda p: (p.version, p.name)),
            backends=sorted(backends, key=lambda b: (b.ip, b.port)),
            lb_id=lb_id,
            vip=vip,
        )
        with self._lock:
            self._latest = snap
            self._lock.notify_all()
        return snap

    def _service_lb(self) -> tuple[str | None, str | None]:
        try:
            service = self._core.read_namespaced_service(self._service, self._namespace)
        except client.ApiException as exc:
            if exc.status == 404:
                return None, None
            raise
        lb_id = ((service.metadata and service.metadata.annotations) or {}).get(LB_ID_ANNOTATION)
        balancer = service.status.load_balancer if service.status else None
        ingress = (balancer.ingress or []) if balancer else []
        return lb_id, (ingress[0].ip if ingress else None)

    def next_snapshot(self, after: float, *, pace_s: float = 0.3, wait_s: float = 2.0) -> Snapshot:
        """A snapshot taken after `after`: the sampling thread's next tick when it runs (no list of our own:
        each list of a few hundred Pods costs CPU in the process that also runs the cluster and the CLB),
        else, or if no tick comes within `wait_s`, one taken now, `pace_s` after asking."""
        if self._thread is not None and self._thread.is_alive():
            deadline = time.monotonic() + wait_s
            with self._lock:
                while self._latest.t <= after and (remaining := deadline - time.monotonic()) > 0:
                    self._lock.wait(remaining)
                if self._latest.t > after:
                    return self._latest
        else:
            time.sleep(pace_s)
        return self.snapshot()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="demo-observer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                snap = self.snapshot()
            except Exception:  # the API may be briefly busy; the next tick tries again
                continue
            self.history.append(snap)
            live = snap.live_pods()
            self._report.samples.append(
                Sample(
                    t=snap.t,
                    pods_ready=sum(p.ready for p in live),
                    pods_total=len(live),
                    backends_healthy=sum(b.serving for b in snap.backends),
                    backends_total=len(snap.backends),
                )
            )
