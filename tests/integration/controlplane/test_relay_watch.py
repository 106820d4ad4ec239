"""The relay's watch mode against the real API server, with its own ServiceAccount's token.

infra/ is applied as a user would; the relay lists and watches Pods, Services, TkeServiceConfigs and
the TKE ConfigMap as `system:serviceaccount:clb-direct:clb-direct-relay` only, so a permission its
RBAC lacks shows up as a watch error and fails the test. A direct-access Service and a Pod it selects
must reach the router as signed batches.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from kubernetes import client, config

from emulators.controlplane.cluster import RealCluster
from emulators.controlplane.infra import RELAY_ACCOUNT
from relay.app import Relay
from relay.batcher import Batcher, BatcherConfig
from tests.support.polling import eventually


class RecordingRouter:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def post(self, _url: str, body: bytes, _headers: dict[str, str], _timeout_s: float) -> int:
        with self._lock:
            self.items.extend(json.loads(body).get("items") or [])
        return 200

    def names(self, resource: str) -> set[str]:
        with self._lock:
            return {
                str((item.get("object") or {}).get("metadata", {}).get("name"))
                for item in self.items
                if item.get("resource") == resource
            }


def test_relay_watch_mode_with_its_own_service_account(
    real_cluster: RealCluster, admin: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    real_cluster.apply_infra(webhook_url=None, bootstrap=False)  # the relay needs its RBAC, not the webhook
    kubeconfig = real_cluster.service_account_kubeconfig(*RELAY_ACCOUNT, tmp_path / "relay.kubeconfig")
    router = RecordingRouter()
    batcher = Batcher(
        BatcherConfig(router_url="http://router.invalid/router", hmac_key=b"k" * 32, window_s=0.2), post=router.post
    )
    with config.new_client_from_config(config_file=str(kubeconfig)) as relay_api:
        relay = Relay(batcher=batcher, sources=["watch"], api_client=relay_api, watch_timeout_s=30)
        relay.start()
        try:
            core = client.CoreV1Api(admin)
            core.create_namespaced_service(
                namespace,
                {
                    "metadata": {"name": "web", "annotations": {"service.cloud.tencent.com/direct-access": "true"}},
                    "spec": {
                        "type": "LoadBalancer",
                        "selector": {"app": "web"},
                        "ports": [{"port": 80, "targetPort": 8080}],
                    },
                },
            )
            core.create_namespaced_pod(
                namespace,
                {
                    "metadata": {"name": "web-1", "labels": {"app": "web"}},
                    "spec": {
                        "containers": [{"name": "web", "image": "example/web:1", "ports": [{"containerPort": 8080}]}]
                    },
                },
            )
            eventually(lambda: "web" in router.names("services"), "the Service batched by the relay", timeout=60)
            eventually(lambda: "web-1" in router.names("pods"), "the selected Pod batched by the relay", timeout=60)
            stats = relay.stats()
            assert all(w["synced"] for w in stats["watches"]), stats["watches"]
            assert not any(w["lastError"] for w in stats["watches"]), stats["watches"]
        finally:
            relay.stop()
