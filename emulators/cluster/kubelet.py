"""The simulated kubelet: gives scheduled Pods an IP, real HTTP servers and kubelet-exact status.

`ClusterSimulator` (`simulator.py`) runs one `Kubelet` for all simulated nodes. It watches Pods through
`ObjectStore.subscribe` and, per Pod bound to one of its nodes:
allocates an IP (`ipam.py`: VPC-CNI, GlobalRouter or host network), writes the sandbox status, starts
one real HTTP server per container port after the start delay (`pod_servers.py`), then keeps the
kubelet-owned conditions right with the §3.1 rules (`pod_conditions.py`) on every change of the Pod,
so a readiness-gate patch flips `Ready`. Every status write goes through `pods/status` as
`system:node:<node>` and only when something changed. On graceful deletion the containers turn
unready at once and stop as a real kubelet stops them (`termination.py`: preStop hook, SIGTERM under
the Pod's app model, kill at the end of the grace period, Events for failed hooks); once every
container has exited the Pod is deleted with grace 0. Tests and the CLI inject faults with
`crash_container`, `fail_readiness` and `restore`.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from emulators.cluster.errors import ApiError
from emulators.cluster.ipam import IpamExhaustedError, NetworkMode, PodIpam, network_mode_for_pod, node_ip
from emulators.cluster.pod_conditions import kubelet_conditions, merge_conditions
from emulators.cluster.pod_servers import (
    ContainerIdentity,
    ContainerServer,
    container_ports,
    container_version,
    ports_free,
    readiness_path,
)
from emulators.cluster.simclock import SimClock, WallClock, format_time
from emulators.cluster.termination import AppModel, PodTermination, kubelet_event
from emulators.cluster.workqueue import StoreController

if TYPE_CHECKING:
    from emulators.cluster.store import ObjectStore

log = logging.getLogger(__name__)

DEFAULT_GRACE_S = 30
START_RETRY_S = 1.0


@dataclass
class _Container:
    name: str
    image: str
    servers: list[ContainerServer]
    readiness_failed: threading.Event
    state: str = "waiting"  # waiting | running | terminated
    reason: str = "ContainerCreating"
    message: str = ""
    restart_count: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    last_terminated: dict[str, Any] | None = None

    @property
    def ready(self) -> bool:
        return self.state == "running" and not self.readiness_failed.is_set()

    def status(self, uid: str, terminating: bool) -> dict[str, Any]:
        state: dict[str, Any]
        if self.state == "running":
            state = {"running": {"startedAt": format_time(self.started_at or 0)}}
        elif self.state == "terminated":
            state = {
                "terminated": {
                    "exitCode": 1,
                    "reason": "Error",
                    "message": self.message,
                    "startedAt": format_time(self.started_at or 0),
                    "finishedAt": format_time(self.finished_at or 0),
                }
            }
        else:
            state = {"waiting": {"reason": self.reason, **({"message": self.message} if self.message else {})}}
        return {
            "name": self.name,
            "image": self.image,
            "imageID": "",
            "containerID": f"sim://{uid}/{self.name}",
            "ready": self.ready and not terminating,
            "started": self.state == "running",
            "restartCount": self.restart_count,
            "state": state,
            "lastState": {"terminated": self.last_terminated} if self.last_terminated else {},
        }


@dataclass
class _PodRuntime:
    uid: str
    node: str
    ip: str
    started_at: float
    start_due: float
    containers: list[_Container]
    started: bool = False
    termination: PodTermination | None = None


class Kubelet(StoreController):
    def __init__(
        self,
        store: ObjectStore,
        *,
        nodes: list[str],
        ipam: PodIpam,
        default_mode: NetworkMode = NetworkMode.VPC_CNI,
        start_delay_s: float = 0.2,
        readiness_path: str = "/ready",
        max_grace_s: float | None = None,
        clock: SimClock | None = None,
        default_on_sigterm: str = "exit",
    ) -> None:
        super().__init__(store, "kubelet", resync_period_s=10.0)
        self._default_app = AppModel.parse(default_on_sigterm)
        self._node_index = {node: index for index, node in enumerate(nodes, start=1)}
        self._ipam = ipam
        self._default_mode = default_mode
        self._start_delay_s = start_delay_s
        self._readiness_path = readiness_path
        self._max_grace_s = max_grace_s
        self._clock = clock or WallClock()
        self._lock = threading.RLock()
        self._pods: dict[str, _PodRuntime] = {}

    def stop(self) -> None:
        super().stop()
        with self._lock:
            for key in list(self._pods):
                self._teardown(key)

    # Fault injection -------------------------------------------------------------------------------

    def connections_in_flight(self, namespace: str, name: str) -> int:
        """Connections the Pod's container servers have accepted and not finished (0 once it stopped)."""
        with self._lock:
            runtime = self._pods.get(f"{namespace}/{name}")
            servers = [server for c in runtime.containers for server in c.servers] if runtime is not None else []
        return sum(server.in_flight for server in servers)

    def crash_container(self, namespace: str, name: str, container: str | None = None) -> None:
        """Stop the container's servers and report it terminated (exit 1) until `restore`."""
        with self._lock:
            for item in self._containers(namespace, name, container):
                for server in item.servers:
                    server.stop()
                if item.state == "running":
                    item.state, item.finished_at, item.message = "terminated", self._clock.now(), "crash injected"
        self._queue.add(f"{namespace}/{name}")

    def fail_readiness(self, namespace: str, name: str, container: str | None = None) -> None:
        """Make the readiness path answer 503 and the container report ready=false."""
        with self._lock:
            for item in self._containers(namespace, name, container):
                item.readiness_failed.set()
        self._queue.add(f"{namespace}/{name}")

    def restore(self, namespace: str, name: str, container: str | None = None) -> None:
        """Undo injected faults: restart crashed containers (restartCount+1) and pass readiness again."""
        with self._lock:
            for item in self._containers(namespace, name, container):
                item.readiness_failed.clear()
                if item.state == "terminated":
                    item.last_terminated = item.status("", False)["state"]["terminated"]
                    item.restart_count += 1
                    self._run_container(item)
        self._queue.add(f"{namespace}/{name}")

    def _containers(self, namespace: str, name: str, container: str | None) -> list[_Container]:
        runtime = self._pods.get(f"{namespace}/{name}")
        if runtime is None:
            raise KeyError(f"pod {namespace}/{name} is not running on a simulated node (not yet started?)")
        chosen = [c for c in runtime.containers if container is None or c.name == container]
        if not chosen:
            raise KeyError(f"pod {namespace}/{name} has no container {container!r}")
        return chosen

    # Sync loop -------------------------------------------------------------------------------------

    def _on_event(self, _kind: str, resource: str, obj: dict[str, Any]) -> None:
        if resource == "pods":
            meta = obj.get("metadata") or {}
            self._queue.add(f"{meta.get('namespace')}/{meta.get('name')}")

    def _all_keys(self) -> list[str]:
        pods, _ = self._store.list("pods", read_only=True)
        keys = {f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in pods}
        with self._lock:
            keys.update(self._pods)
        return sorted(keys)

    def _sync(self, key: str) -> None:
        namespace, name = key.split("/", 1)
        pod = self._store.get("pods", namespace, name)
        with self._lock:
            runtime = self._pods.get(key)
            if runtime is not None and (pod is None or pod["metadata"].get("uid") != runtime.uid):
                self._teardown(key)
                runtime = None
            if pod is None:
                return
            node = (pod.get("spec") or {}).get("nodeName")
            if node not in self._node_index or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                return
            deleting = bool(pod["metadata"].get("deletionTimestamp"))
            if runtime is None:
                if deleting:
                    # Never started here: nothing to drain, confirm the deletion at once.
                    self._confirm_deletion(namespace, name, node)
                    return
                runtime = self._create_sandbox(key, pod, node)
                if runtime is None:
                    return
            now = time.monotonic()
            if deleting:
                if runtime.termination is None:
                    runtime.termination = self._begin_termination(key, pod, runtime)
                if runtime.termination.done:
                    self._teardown(key)
                    self._confirm_deletion(namespace, name, node)
                    return
            elif not runtime.started and now < runtime.start_due:
                self._queue.add_after(key, runtime.start_due - now)
            elif self._start_waiting_containers(runtime):
                # A port was busy (another simulator on this machine?): retry like a container restart.
                self._queue.add_after(key, START_RETRY_S)
            self._write_status(namespace, name, runtime, deleting)

    def _begin_termination(self, key: str, pod: dict[str, Any], runtime: _PodRuntime) -> PodTermination:
        """Stop the containers in the background (preStop, SIGTERM, kill); the queue hears when all exited."""
        node = runtime.node

        def record(kind: str, reason: str, message: str) -> None:
            self._store.create(
                "events",
                pod["metadata"]["namespace"],
                kubelet_event(pod, kind, reason, message, node=node, now=self._clock.now()),
                actor=f"system:node:{node}",
            )

        termination = PodTermination(
            pod=copy.deepcopy(pod),
            stoppables={c.name: c.servers for c in runtime.containers if c.state == "running"},
            grace_s=self._grace_seconds(pod),
            pod_ip=runtime.ip,
            record_event=record,
            on_done=lambda: self._queue.add(key),
            default_app=self._default_app,
        )
        termination.start()
        return termination

    def _confirm_deletion(self, namespace: str, name: str, node: str) -> None:
        try:
            self._store.delete("pods", namespace, name, grace_period_seconds=0, actor=f"system:node:{node}")
        except ApiError as exc:
            if exc.code != 404:  # already gone is the outcome we wanted
                raise

    def _grace_seconds(self, pod: dict[str, Any]) -> float:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_S)
        if self._max_grace_s is not None:
            return min(float(grace), self._max_grace_s)
        return float(grace)

    def _create_sandbox(self, key: str, pod: dict[str, Any], node: str) -> _PodRuntime | None:
        mode = network_mode_for_pod(pod, self._default_mode)
        ports = [port for spec in (pod.get("spec") or {}).get("containers") or [] for port in container_ports(spec)]
        try:
            ip = self._allocate_free_ip(mode, self._node_index[node], ports)
        except IpamExhaustedError:
            log.exception("sim kubelet: no IP for pod %s; retrying in 1 s", key)
            self._queue.add_after(key, 1.0)
            return None
        namespace, name = key.split("/", 1)
        containers = []
        for spec in (pod.get("spec") or {}).get("containers") or []:
            failed = threading.Event()
            identity_path = readiness_path(spec, self._readiness_path)
            servers = [
                ContainerServer(
                    ContainerIdentity(
                        namespace, name, spec["name"], container_version(spec), ip, port, identity_path, failed
                    )
                )
                for port in container_ports(spec)
            ]
            containers.append(_Container(spec["name"], str(spec.get("image", "")), servers, failed))
        runtime = _PodRuntime(
            uid=str(pod["metadata"].get("uid")),
            node=node,
            ip=ip,
            started_at=self._clock.now(),
            start_due=time.monotonic() + self._start_delay_s,
            containers=containers,
        )
        self._pods[key] = runtime
        log.info("sim kubelet: pod %s on %s got %s (%s)", key, node, ip, mode.value)
        return runtime

    def _allocate_free_ip(self, mode: NetworkMode, node_index: int, ports: list[int]) -> str:
        """An IP whose container ports nobody on this machine listens on (e.g. a concurrent test run)."""
        ip = self._ipam.allocate(mode, node_index)
        if mode is NetworkMode.HOST:
            return ip
        for _ in range(16):
            if ports_free(ip, ports):
                return ip
            busy, ip = ip, self._ipam.allocate(mode, node_index)
            self._ipam.release(busy)
        return ip

    def _start_waiting_containers(self, runtime: _PodRuntime) -> bool:
        """Start containers not running yet (first start or a failed bind); True if one still waits.

        Crashed containers stay down: only `restore` restarts them.
        """
        runtime.started = True
        for container in runtime.containers:
            if container.state == "waiting":
                self._run_container(container)
        return any(container.state == "waiting" for container in runtime.containers)

    def _run_container(self, container: _Container) -> None:
        try:
            for server in container.servers:
                server.start()
        except OSError as exc:
            for server in container.servers:
                server.stop()
            container.state, container.reason = "waiting", "RunContainerError"
            container.message = f"cannot listen on {container.servers[0].identity.ip}: {exc}"
            return
        container.state, container.reason, container.message = "running", "", ""
        container.started_at = self._clock.now()

    def _teardown(self, key: str) -> None:
        runtime = self._pods.pop(key, None)
        if runtime is None:
            return
        if runtime.termination is not None and not runtime.termination.done:
            runtime.termination.abort()
        for container in runtime.containers:
            for server in container.servers:
                server.stop()
        self._ipam.release(runtime.ip)

    def _write_status(self, namespace: str, name: str, runtime: _PodRuntime, deleting: bool) -> None:
        container_statuses = [c.status(runtime.uid, deleting) for c in runtime.containers]
        host_ip = node_ip(self._node_index[runtime.node])
        now = self._clock.now()

        def update(pod: dict[str, Any]) -> dict[str, Any] | None:
            if pod["metadata"].get("uid") != runtime.uid:
                return None  # the UID precondition of the real kubelet's status patch
            current = pod.get("status") or {}
            phase = "Running" if runtime.started else "Pending"
            owned = kubelet_conditions(
                pod.get("spec") or {},
                current.get("conditions") or [],
                container_statuses,
                phase,
                sandbox_ready=True,
            )
            desired = dict(current)
            desired.update(
                {
                    "phase": phase,
                    "hostIP": host_ip,
                    "hostIPs": [{"ip": host_ip}],
                    "podIP": runtime.ip,
                    "podIPs": [{"ip": runtime.ip}],
                    "startTime": current.get("startTime") or format_time(runtime.started_at),
                    "qosClass": current.get("qosClass") or "BestEffort",
                    "containerStatuses": container_statuses,
                    "conditions": merge_conditions(current.get("conditions") or [], owned, now),
                }
            )
            if desired == current:
                return None
            updated = copy.deepcopy(pod)
            updated["status"] = desired
            return updated

        self._store.mutate("pods", namespace, name, update, subresource="status", actor=f"system:node:{runtime.node}")
