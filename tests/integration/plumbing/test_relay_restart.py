"""A restarted relay resumes its watches from the checkpoint of what it delivered (issue 14 #12).

The relay watches the cluster simulator through the real `kubernetes` client and delivers to a
recording router. While it is stopped one Pod is deleted and another created; the restarted relay,
given the same checkpoint file, must watch on from the delivered resourceVersion (no Pod relist)
and forward both, the deletion included, which a fresh list could never show.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from emulators.cluster.simulator import ClusterSimulator
from relay.app import Relay
from relay.batcher import Batcher, BatcherConfig
from shared.events.relay import RelayBatch, WatchItem
from tests.support.polling import eventually

NS = "default"


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: list[tuple[str, str]] = []

    def post(self, _url: str, body: bytes, _headers: dict[str, str], _timeout_s: float) -> int:
        with self.lock:
            for item in RelayBatch.parse(body).items:
                if isinstance(item, WatchItem) and item.resource == "pods":
                    self.seen.append((item.type, str(item.object["metadata"]["name"])))
        return 200

    def has(self, kind: str, name: str) -> bool:
        with self.lock:
            return (kind, name) in self.seen

    def live(self, name: str) -> bool:
        """ADDED or MODIFIED: the relay coalesces an object's events, so only its newest is sent."""
        return self.has("ADDED", name) or self.has("MODIFIED", name)


SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web", "annotations": {"service.cloud.tencent.com/direct-access": "true"}},
    "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
}


def _pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "web:v1"}]},
    }


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[ClusterSimulator]:
    with ClusterSimulator(kubeconfig_path=tmp_path / "kubeconfig", start_delay_s=0.1, max_grace_s=1.0) as sim:
        yield sim


def _relay(api: client.ApiClient, recorder: Recorder, checkpoint: Path) -> Relay:
    batcher = Batcher(BatcherConfig(router_url="http://router/", hmac_key=b"k", window_s=0.05), post=recorder.post)
    return Relay(
        batcher=batcher,
        sources=["watch"],
        api_client=api,
        watch_timeout_s=5,
        watched=("services", "pods"),
        checkpoint_path=str(checkpoint),
        checkpoint_interval_s=0.1,
    )


def test_a_restarted_relay_delivers_what_happened_while_it_was_down(sim: ClusterSimulator, tmp_path: Path) -> None:
    api = config.new_client_from_config(config_file=str(sim.kubeconfig_path))
    core = client.CoreV1Api(api)
    checkpoint = tmp_path / "relay-checkpoint.json"
    core.create_namespaced_service(NS, SERVICE)  # the relay forwards only Pods a direct-access Service selects
    try:
        first = Recorder()
        relay = _relay(api, first, checkpoint)
        relay.start()
        try:
            core.create_namespaced_pod(NS, _pod("a"))
            core.create_namespaced_pod(NS, _pod("b"))
            eventually(lambda: first.live("a") and first.live("b"), "a and b delivered")
        finally:
            relay.stop()
        assert checkpoint.exists()

        core.delete_namespaced_pod("a", NS, grace_period_seconds=0)
        eventually(lambda: not [p for p in core.list_namespaced_pod(NS).items if p.metadata.name == "a"], "a gone")
        core.create_namespaced_pod(NS, _pod("c"))

        second = Recorder()
        relay = _relay(api, second, checkpoint)
        relay.start()
        try:
            eventually(lambda: second.has("DELETED", "a"), "the deletion made while the relay was down")
            eventually(lambda: second.live("c"), "the Pod created while the relay was down")
            pods = next(w for w in relay.watchers if w.resource == "pods")
            assert pods.state.relists == 0, "resumed from the checkpoint, not relisted"
        finally:
            relay.stop()
    finally:
        api.close()
