"""The relay, fed by the cluster simulator in watch mode and in audit mode, drives the router.

A direct-access Service and a Deployment are created through the real `kubernetes` client; a rolling
update then replaces every Pod. The router must plan a `service` step for the Service, `bind` for every
Pod once it has an IP and ready containers (on the Service's CLB), and `unbind` for every old Pod —
whether the events arrive by watch or by audit webhook, where the simulator's audit backend delivers
batches concurrently (out of order) and the relay re-batches them.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from emulators.cluster.simulator import ClusterSimulator
from relay.app import Relay
from relay.auth import AuditAuth
from relay.batcher import Batcher, BatcherConfig
from shared.deps import Deps
from shared.domain.models import SelectorEntry
from tests.integration.plumbing.conftest import HMAC_KEY, RouterServer, pods_for
from tests.manifests import web_deployment
from tests.support.fakes import StepQueue
from tests.support.polling import eventually

NS = "default"
LB_ID = "lb-web00001"


def _service() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "web",
            "annotations": {
                "service.cloud.tencent.com/direct-access": "true",
                "service.kubernetes.io/loadbalance-id": LB_ID,
            },
        },
        "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }


def _deployment(version: str, replicas: int = 2) -> dict[str, Any]:
    return web_deployment(version, replicas=replicas)


def _batcher(router: RouterServer) -> Batcher:
    return Batcher(BatcherConfig(router_url=router.url, hmac_key=HMAC_KEY.encode(), batch_size=50, window_s=0.2))


def _live_pods(core: client.CoreV1Api, version: str) -> set[str]:
    pods = core.list_namespaced_pod(NS, label_selector="app=web").items
    return {
        f"{NS}/{p.metadata.name}"
        for p in pods
        if p.metadata.deletion_timestamp is None and p.spec.containers[0].env[0].value == version
    }


def _healthz(relay: Relay) -> dict[str, Any]:
    with urllib.request.urlopen(f"{relay.url}/healthz", timeout=10) as response:
        return dict(json.loads(response.read()))


def _rollout_routes_every_pod(api: client.ApiClient, invoker: StepQueue, router_deps: Deps) -> None:
    # What the service step would have recorded once it ensured the CLB (the router reads it).
    router_deps.store.put_selector(SelectorEntry(namespace=NS, service="web", selector={"app": "web"}, lb_id=LB_ID))
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    core.create_namespaced_service(NS, _service())
    apps.create_namespaced_deployment(NS, _deployment("v1"))
    eventually(lambda: any(n == "service" for n, _ in invoker.snapshot()), "a service step for default/web")

    def exactly(version: str, count: int) -> set[str] | None:
        live = _live_pods(core, version)
        return live if len(live) == count else None

    first = eventually(lambda: exactly("v1", 2), "two v1 Pods")
    eventually(lambda: first <= pods_for(invoker, "bind"), f"bind requested for {first}")
    apps.patch_namespaced_deployment("web", NS, _deployment("v2"))
    second = eventually(lambda: exactly("v1", 0) is not None and exactly("v2", 2), "rollout to v2")
    eventually(lambda: second <= pods_for(invoker, "bind"), f"bind requested for {second}")
    eventually(lambda: first <= pods_for(invoker, "unbind"), f"unbind requested for {first}")
    binds = [p for n, p in invoker.snapshot() if n == "bind"]
    assert {p["lb_id"] for p in binds} == {LB_ID}
    assert all(p["services"] == [{"namespace": NS, "name": "web"}] for p in binds)
    # Events are hints: no bind was ever planned for a Pod without an IP or being deleted.
    assert not (pods_for(invoker, "bind") - first - second)


@pytest.fixture
def sim_watch(tmp_path: Path) -> Iterator[ClusterSimulator]:
    with ClusterSimulator(kubeconfig_path=tmp_path / "kubeconfig", start_delay_s=0.1, max_grace_s=1.0) as sim:
        yield sim


def test_watch_mode_rolling_update(
    sim_watch: ClusterSimulator, router: RouterServer, router_deps: Deps, invoker: StepQueue
) -> None:
    api = config.new_client_from_config(config_file=str(sim_watch.kubeconfig_path))
    relay = Relay(batcher=_batcher(router), sources=["watch"], api_client=api, watch_timeout_s=5)
    relay.start()
    try:
        _rollout_routes_every_pod(api, invoker, router_deps)
        health = _healthz(relay)
        assert health["selectorCache"] == {"warm": True, "services": 1}
        assert {w["resource"] for w in health["watches"] if w["synced"]} >= {"pods", "services"}
        assert health["batcher"]["batches_sent"] >= 1 and "batches_rejected" not in health["batcher"]
    finally:
        relay.stop()
        api.close()
    assert set(router.statuses) == {200}


def test_audit_mode_rolling_update(tmp_path: Path, router: RouterServer, router_deps: Deps, invoker: StepQueue) -> None:
    token = "relay-audit-token"  # what the API server's audit webhook kubeconfig carries
    relay = Relay(batcher=_batcher(router), sources=["audit"], audit_auth=AuditAuth(token=token))
    relay.start()
    sim = ClusterSimulator(
        kubeconfig_path=tmp_path / "kubeconfig",
        start_delay_s=0.1,
        max_grace_s=1.0,
        audit_url=f"{relay.url}/audit",
        audit_batch_wait_s=0.2,
        audit_token=token,
    )
    try:
        with sim:
            api = config.new_client_from_config(config_file=str(sim.kubeconfig_path))
            try:
                _rollout_routes_every_pod(api, invoker, router_deps)
            finally:
                api.close()
        health = _healthz(relay)
        assert health["relay"]["audit_received"] > health["relay"].get("audit_filtered", 0) > 0
        events = router_deps.store.list_events(now=router_deps.clock.now(), limit=500)
        assert events and {e.source for e in events} == {"audit"}
    finally:
        relay.stop()
    assert set(router.statuses) == {200}
