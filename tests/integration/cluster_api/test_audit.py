"""Audit webhook backend: EventList batches of writes reach a local receiver with the real quirks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from emulators.cluster.audit import AuditWebhookBackend
from tests.integration.cluster_api.conftest import Cluster, pod_manifest
from tests.support.net import BackgroundServer


class Receiver:
    """Plain-HTTP audit sink; fails the first ``failures`` POSTs with 503."""

    def __init__(self, failures: int = 0) -> None:
        self.batches: list[dict[str, Any]] = []
        self.attempts = 0
        self.failures = failures
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.attempts += 1
                if outer.attempts <= outer.failures:
                    self.send_response(503)
                else:
                    outer.batches.append(body)
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = BackgroundServer(Handler)
        self.url = self._server.url("/audit")

    @property
    def events(self) -> list[dict[str, Any]]:
        return [event for batch in self.batches for event in batch["items"]]

    def stop(self) -> None:
        self._server.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    try:
        yield server
    finally:
        server.stop()


def attach(cluster: Cluster, url: str, **options: Any) -> AuditWebhookBackend:
    backend = AuditWebhookBackend(url, batch_max_wait_s=0.05, initial_backoff_s=0.05, **options).start()
    cluster.store.audit_sink = backend.record
    return backend


def test_writes_arrive_as_event_lists_with_the_real_quirks(cluster: Cluster, receiver: Receiver) -> None:
    backend = attach(cluster, receiver.url)
    try:
        core = cluster.core
        pod = core.create_namespaced_pod("shop", pod_manifest(None))
        name = pod.metadata.name
        patch = {"status": {"conditions": [{"type": "lb/ready", "status": "True"}]}}
        core.patch_namespaced_pod_status(name, "shop", patch)
        core.create_namespaced_secret("shop", {"metadata": {"name": "s"}, "stringData": {"password": "hunter2"}})
        core.create_namespaced_config_map("kube-public", {"metadata": {"name": "cm"}})
        core.create_namespaced_event(
            "shop", {"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod", "name": name}}
        )
        assert backend.flush(30)
    finally:
        backend.stop()
    assert all(b["kind"] == "EventList" and b["apiVersion"] == "audit.k8s.io/v1" for b in receiver.batches)
    by_resource = {(e["objectRef"]["resource"], e["objectRef"].get("subresource")): e for e in receiver.events}
    assert set(by_resource) == {("pods", None), ("pods", "status"), ("secrets", None), ("configmaps", None)}

    create = by_resource[("pods", None)]
    assert create["level"] == "RequestResponse" and create["stage"] == "ResponseComplete"
    assert create["verb"] == "create" and "name" not in create["objectRef"]  # generateName create
    assert create["responseObject"]["metadata"]["name"] == name
    assert create["requestURI"] == "/api/v1/namespaces/shop/pods"
    assert create["responseStatus"] == {"metadata": {}, "code": 201}
    assert create["user"]["username"] == "system:admin"
    assert create["userAgent"].startswith("OpenAPI-Generator/")
    assert len(create["requestReceivedTimestamp"]) == len("2025-01-01T00:00:00.000000Z")

    status = by_resource[("pods", "status")]
    assert status["verb"] == "patch" and status["objectRef"]["name"] == name
    assert status["requestObject"] == patch
    assert {c["type"] for c in status["responseObject"]["status"]["conditions"]} == {"lb/ready"}
    assert status["auditID"] != create["auditID"]

    secret = by_resource[("secrets", None)]
    assert secret["level"] == "Metadata" and "requestObject" not in secret and "responseObject" not in secret


def test_failed_posts_are_retried_then_dropped(cluster: Cluster) -> None:
    flaky = Receiver(failures=2)
    backend = attach(cluster, flaky.url)
    try:
        cluster.core.create_namespaced_config_map("ns", {"metadata": {"name": "retried"}})
        assert backend.flush(30)
        assert flaky.attempts == 3 and len(flaky.events) == 1
        flaky.failures = 100
        cluster.core.create_namespaced_config_map("ns", {"metadata": {"name": "dropped"}})
        assert backend.flush(30)
        assert backend.dropped_events == 1 and flaky.attempts == 3 + 5  # five attempts, then the batch is dropped
    finally:
        backend.stop()
        flaky.stop()


def test_events_are_batched_by_size(cluster: Cluster, receiver: Receiver) -> None:
    # With a 60 s max wait, flush() within 30 s proves full batches are sent without waiting.
    backend = AuditWebhookBackend(receiver.url, batch_max_size=3, batch_max_wait_s=60.0).start()
    cluster.store.audit_sink = backend.record
    try:
        for i in range(6):
            cluster.store.create("configmaps", "ns", {"metadata": {"name": f"c{i}"}})
        assert backend.flush(30)
    finally:
        backend.stop()
    assert sorted(len(b["items"]) for b in receiver.batches) == [3, 3]
    assert backend.sent_batches == 2
