"""A cluster-simulator API server on 127.0.0.1 (free port) and a `KubernetesCluster` over the real client."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from emulators.cluster.server import ClusterApiServer
from emulators.cluster.simulator import version_info
from emulators.cluster.store import ObjectStore
from shared.adapters.kubernetes_api import KubernetesCluster
from shared.clock import FakeClock
from shared.config import Settings


@dataclass
class Sim:
    store: ObjectStore
    server: ClusterApiServer
    kubeconfig: Path
    cluster: KubernetesCluster
    clock: FakeClock

    def pod(
        self, name: str, *, ip: str = "10.0.0.5", labels: dict[str, str] | None = None, **status: Any
    ) -> dict[str, Any]:
        self.store.create(
            "pods",
            "default",
            {
                "metadata": {"name": name, "labels": labels if labels is not None else {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": "app", "image": "nginx", "ports": [{"name": "http", "containerPort": 8080}]}
                    ],
                    "readinessGates": [{"conditionType": "cloud.tencent.com/load-balancer-backendgroup-ready"}],
                },
            },
        )

        def running(obj: dict[str, Any]) -> dict[str, Any]:
            obj["status"] = {
                "phase": "Running",
                "podIP": ip,
                "conditions": [
                    {"type": "ContainersReady", "status": "True", "lastTransitionTime": "2024-01-01T00:00:00Z"},
                    {"type": "Ready", "status": "False", "lastTransitionTime": "2024-01-01T00:00:00Z"},
                ],
                **status,
            }
            return obj

        result = self.store.mutate("pods", "default", name, running, subresource="status")
        assert result is not None
        return result

    def service(self, name: str = "web", **meta: Any) -> dict[str, Any]:
        return self.store.create(
            "services",
            "default",
            {
                "metadata": {"name": name, **meta},
                "spec": {
                    "type": "LoadBalancer",
                    "selector": {"app": "web"},
                    "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
                },
            },
        )


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Sim]:
    store = ObjectStore(history_size=200)
    server = ClusterApiServer.self_signed(store, version=version_info("1.28.3")).start()
    kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
    clock = FakeClock()
    cluster = KubernetesCluster.from_settings(
        Settings.load({}, kubeconfig=str(kubeconfig), store_url="memory://"), clock=clock
    )
    try:
        yield Sim(store, server, kubeconfig, cluster, clock)
    finally:
        cluster.close()
        server.stop()
