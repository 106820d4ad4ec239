"""`ClusterSimulator`: the whole local Kubernetes cluster — API server, admission, audit, nodes, controllers.

Used by `clb-direct emulate cluster` (`cli/cmd_emulate_cluster.py`), by integration tests and by the
demo. It composes the object store (`store.py`) with the mutating-webhook admission chain
(`admission.py`), an optional audit webhook backend (`audit.py`), the HTTPS API server with a fresh CA
(`server.py`) and a kubeconfig for the real `kubernetes` client, then the behaviours: scheduler,
kubelet with real Pod servers, ReplicaSet and Deployment controllers. `start()` brings everything
up, `stop()` tears it down in reverse order (Pod servers included); it is also a context manager.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from emulators.cluster.admission import AdmissionChain
from emulators.cluster.audit import AuditWebhookBackend
from emulators.cluster.deployment import DeploymentController
from emulators.cluster.ipam import NetworkMode, PodIpam
from emulators.cluster.kubelet import Kubelet
from emulators.cluster.replicaset import ReplicaSetController
from emulators.cluster.scheduler import Scheduler, default_node_names
from emulators.cluster.server import ClusterApiServer
from emulators.cluster.simclock import SimClock, WallClock
from emulators.cluster.store import ObjectStore

_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?$")


class _Part(Protocol):
    def start(self) -> Any: ...

    def stop(self) -> Any: ...


def version_info(version: str) -> dict[str, str]:
    """`/version` body for "1.28", "1.28.3" or "v1.28.3" (a TKE-style gitVersion).

    Every field of `version.Info` is filled: the `kubernetes` client's model refuses a body without them.
    """
    match = _VERSION.match(version.strip())
    if match is None:
        raise ValueError(f"invalid Kubernetes version {version!r}; expected MAJOR.MINOR[.PATCH], e.g. 1.28")
    major, minor, patch = match.group(1), match.group(2), match.group(3) or "0"
    return {
        "major": major,
        "minor": minor,
        "gitVersion": f"v{major}.{minor}.{patch}-tke.1",
        "gitCommit": "0" * 40,
        "gitTreeState": "clean",
        "buildDate": "2024-01-01T00:00:00Z",
        "goVersion": "go1.22.0",
        "compiler": "gc",
    }


class ClusterSimulator:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        kubeconfig_path: str | Path | None = None,
        version: str = "1.28",
        network_mode: NetworkMode | str = NetworkMode.VPC_CNI,
        start_delay_s: float = 0.2,
        node_count: int = 3,
        audit_url: str | None = None,
        audit_ca_file: str | None = None,
        audit_batch_wait_s: float = 1.0,
        audit_token: str | None = None,
        readiness_path: str = "/ready",
        max_grace_s: float | None = None,
        resync_period_s: float = 5.0,
        clock: SimClock | None = None,
        default_on_sigterm: str = "exit",
    ) -> None:
        mode = NetworkMode(network_mode)
        if mode is NetworkMode.HOST:
            raise ValueError("the default network mode must be vpc-cni or global-router (host is per Pod)")
        self._clock = clock or WallClock()
        self.store = ObjectStore(now=lambda: datetime.fromtimestamp(self._clock.now(), tz=timezone.utc))
        self.store.admission = AdmissionChain(self.store)
        self.audit: AuditWebhookBackend | None = None
        if audit_url:
            # The real default batch wait is 30 s; a local cluster answers faster so demos react at once.
            self.audit = AuditWebhookBackend(
                audit_url, ca_file=audit_ca_file, batch_max_wait_s=audit_batch_wait_s, token=audit_token
            )
            self.store.audit_sink = self.audit.record
        self.api = ClusterApiServer.self_signed(self.store, host, port, version=version_info(version))
        self.nodes = default_node_names(node_count)
        self.kubelet = Kubelet(
            self.store,
            nodes=self.nodes,
            ipam=PodIpam(node_count),
            default_mode=mode,
            start_delay_s=start_delay_s,
            readiness_path=readiness_path,
            max_grace_s=max_grace_s,
            clock=self._clock,
            default_on_sigterm=default_on_sigterm,
        )
        self._behaviours: list[_Part] = [
            Scheduler(self.store, self.nodes),
            self.kubelet,
            ReplicaSetController(self.store, clock=self._clock, resync_period_s=resync_period_s),
            DeploymentController(self.store, clock=self._clock, resync_period_s=resync_period_s),
        ]
        self._own_dir: Path | None = None
        self._kubeconfig_path = Path(kubeconfig_path) if kubeconfig_path is not None else None
        self._started: list[_Part] = []

    @property
    def kubeconfig_path(self) -> Path:
        if self._kubeconfig_path is None:
            raise RuntimeError("the simulator is not started; call start() first")
        return self._kubeconfig_path

    @property
    def api_url(self) -> str:
        return self.api.url

    @property
    def token(self) -> str:
        return self.api.token

    @property
    def ca_pem(self) -> bytes:
        assert self.api.ca_pem is not None  # self_signed() always sets it
        return self.api.ca_pem

    def start(self) -> ClusterSimulator:
        try:
            if self.audit is not None:
                self.audit.start()
                self._started.append(self.audit)
            self.api.start()
            self._started.append(self.api)
            if self._kubeconfig_path is None:
                self._own_dir = Path(tempfile.mkdtemp(prefix="clb-direct-cluster-"))
                self._kubeconfig_path = self._own_dir / "kubeconfig"
            self.api.write_kubeconfig(self._kubeconfig_path)
            for part in self._behaviours:
                part.start()
                self._started.append(part)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop controllers and nodes first (no new writes), then the API server, then audit delivery."""
        while self._started:
            self._started.pop().stop()
        self.store.close_watches()
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)
            self._own_dir = None
            self._kubeconfig_path = None

    def __enter__(self) -> ClusterSimulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
