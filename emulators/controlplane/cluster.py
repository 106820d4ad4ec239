"""`RealCluster`: the real control plane (`launcher.py`) plus our node agent, shaped like `ClusterSimulator`.

Used by the demo stack's real-control-plane mode, `clb-direct emulate control-plane` and the test tier.
It starts a `ControlPlane`, then the same scheduler and kubelet the simulator runs, as clients of the real
API server through `ApiServerStore` (`emulators/cluster/remote_store.py`): Node objects registered as
`system:node:<name>`, Pending Pods bound as `system:kube-scheduler`, Pod IPs on loopback with one real HTTP
server per container port, kubelet-exact status patches as each node. Deployments and ReplicaSets are the
real kube-controller-manager's. `kubeconfig_path` is the admin's (system:masters); product components
get their own ServiceAccount tokens from `service_account_kubeconfig` (TokenRequest).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from emulators.cluster.ipam import NetworkMode, PodIpam, node_ip
from emulators.cluster.kubelet import Kubelet
from emulators.cluster.remote_store import ApiServerStore
from emulators.cluster.scheduler import SCHEDULER_ACTOR, Scheduler, default_node_names
from emulators.controlplane.infra import apply_infra
from emulators.controlplane.launcher import ControlPlane, ControlPlaneError, ControlPlaneOptions
from emulators.controlplane.pki import RelayServing

TOKEN_SECONDS = 24 * 3600


class RealCluster:
    def __init__(
        self,
        *,
        kubeconfig_path: str | Path | None = None,
        state_dir: Path | None = None,
        audit_url: str | None = None,
        audit_ca_file: str | None = None,
        audit_batch_wait_s: float = 1.0,
        audit_token: str | None = None,
        relay_serving: RelayServing | None = None,
        network_mode: NetworkMode | str = NetworkMode.VPC_CNI,
        start_delay_s: float = 0.2,
        node_count: int = 3,
        readiness_path: str = "/ready",
        max_grace_s: float | None = None,
        default_on_sigterm: str = "exit",
    ) -> None:
        self.control_plane = ControlPlane(
            ControlPlaneOptions(
                state_dir=state_dir,
                audit_url=audit_url,
                audit_ca_file=Path(audit_ca_file)
                if audit_ca_file
                else (relay_serving.ca_cert if relay_serving is not None else None),
                audit_batch_wait_s=audit_batch_wait_s,
                audit_token=audit_token,
            )
        )
        self.audit_token = audit_token
        self.relay_serving = relay_serving  # what a relay joining this cluster must serve its audit endpoint with
        self.nodes = default_node_names(node_count)
        self._kubelet_options: dict[str, Any] = {
            "ipam": PodIpam(node_count),
            "default_mode": NetworkMode(network_mode),
            "start_delay_s": start_delay_s,
            "readiness_path": readiness_path,
            "max_grace_s": max_grace_s,
            "default_on_sigterm": default_on_sigterm,
        }
        self._kubeconfig_path = Path(kubeconfig_path) if kubeconfig_path is not None else None
        self.store: ApiServerStore | None = None
        self.kubelet: Kubelet | None = None
        self._scheduler: Scheduler | None = None

    @property
    def kubeconfig_path(self) -> Path:
        return self._kubeconfig_path or self.control_plane.admin_kubeconfig

    @property
    def api_url(self) -> str:
        return self.control_plane.api_url

    @property
    def ca_pem(self) -> bytes:
        return self.control_plane.ca_pem

    @property
    def version(self) -> str:
        return self.control_plane.binaries.version

    def start(self) -> RealCluster:
        try:
            self.control_plane.start()
            if self._kubeconfig_path is not None:
                self._kubeconfig_path.parent.mkdir(parents=True, exist_ok=True)
                self._kubeconfig_path.write_bytes(self.control_plane.admin_kubeconfig.read_bytes())
                self._kubeconfig_path.chmod(0o600)
            self._wait_for_default_service_account()
            self.store = ApiServerStore.from_kubeconfigs(self._identity_kubeconfig)
            self.store.register_nodes({name: node_ip(index) for index, name in enumerate(self.nodes, start=1)})
            self._scheduler = Scheduler(self.store, self.nodes)  # type: ignore[arg-type]
            self.kubelet = Kubelet(self.store, nodes=self.nodes, **self._kubelet_options)  # type: ignore[arg-type]
            self._scheduler.start()
            self.kubelet.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Agent first (no writes to a stopping API server), then the control plane."""
        for part in (self._scheduler, self.kubelet):
            if part is not None:
                part.stop()
        self._scheduler = self.kubelet = None
        if self.store is not None:
            self.store.close()
            self.store = None
        self.control_plane.stop()

    def __enter__(self) -> RealCluster:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------------------------------ identities

    def _identity_kubeconfig(self, actor: str) -> str:
        if actor.startswith("system:node:"):
            return str(self.control_plane.node_kubeconfig(actor.removeprefix("system:node:")))
        if actor == SCHEDULER_ACTOR:
            return str(self.control_plane.kubeconfig_for(SCHEDULER_ACTOR))
        raise ValueError(f"the node agent has no identity {actor!r}")

    def admin_client(self) -> client.ApiClient:
        api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(self.control_plane.admin_kubeconfig)
        )
        return api

    def apply_infra(self, *, webhook_url: str | None, bootstrap: bool = True) -> str:
        """Apply infra/ as a user would (CRD, RBAC, relay; the webhook template with `bootstrap`)."""
        return apply_infra(
            self.control_plane.binaries,
            self.control_plane.admin_kubeconfig,
            webhook_url=webhook_url,
            bootstrap=bootstrap,
        )

    def service_account_token(self, namespace: str, name: str, *, seconds: int = TOKEN_SECONDS) -> str:
        """A bound token for ServiceAccount `namespace/name` (TokenRequest), as a projected volume gets."""
        with self.admin_client() as api:
            request = client.AuthenticationV1TokenRequest(
                spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=seconds)
            )
            response = client.CoreV1Api(api).create_namespaced_service_account_token(name, namespace, request)
            if response.status is None:
                raise ControlPlaneError(f"TokenRequest for ServiceAccount {namespace}/{name} returned no token")
            return str(response.status.token)

    def service_account_kubeconfig(self, namespace: str, name: str, path: Path) -> Path:
        """A kubeconfig that authenticates as ServiceAccount `namespace/name` and nothing more."""
        return self.control_plane.token_kubeconfig(path, self.service_account_token(namespace, name))

    def _wait_for_default_service_account(self, timeout_s: float = 120.0) -> None:
        """Pods are refused until the serviceaccount controller made `default/default`: wait for it."""
        deadline = time.monotonic() + timeout_s
        with self.admin_client() as api:
            core = client.CoreV1Api(api)
            while time.monotonic() < deadline:
                try:
                    core.read_namespaced_service_account("default", "default")
                    return
                except ApiException as exc:
                    if exc.status != 404:
                        raise
                time.sleep(0.3)
        raise ControlPlaneError(
            f"kube-controller-manager created no ServiceAccount default/default within {timeout_s:.0f} s; "
            f"see {self.control_plane.state_dir / 'kube-controller-manager.log'}"
        )
