"""`ClusterSimulator` wiring: the behaviours' writes reach the audit webhook under their own identities."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from emulators.cluster.simulator import ClusterSimulator, version_info
from tests.support.net import BackgroundServer
from tests.support.polling import eventually


class _Receiver:
    """Collects the audit events POSTed to it as EventList batches."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        receiver = self

        class Collect(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                batch = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                assert batch["kind"] == "EventList"
                with receiver.lock:
                    receiver.events.extend(batch["items"])
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet test output."""

        self.server = BackgroundServer(Collect)
        self.url = self.server.url("/audit")


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    collected = _Receiver()
    with collected.server:
        yield collected


def test_kubelet_and_scheduler_writes_are_audited_as_node_and_scheduler(receiver: _Receiver, tmp_path: Path) -> None:
    url = receiver.url
    with ClusterSimulator(
        kubeconfig_path=tmp_path / "kc", audit_url=url, audit_batch_wait_s=0.2, start_delay_s=0.05, node_count=2
    ) as cluster:
        assert cluster.kubeconfig_path.read_text().count(cluster.api_url) == 1
        cluster.store.create(
            "pods",
            "default",
            {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x:1"}]}},
        )

        def seen() -> set[tuple[str, str | None, str]] | None:
            with receiver.lock:
                found = {
                    (e["verb"], e["objectRef"].get("subresource"), e["user"]["username"])
                    for e in receiver.events
                    if e["objectRef"].get("name") == "p"
                }
            wanted = {
                ("create", None, "system:admin"),
                ("create", "binding", "system:kube-scheduler"),
                ("update", "status", "system:node:node-1"),
            }
            return found if wanted <= found else None

        eventually(seen, "audit events for create, binding and kubelet status")
    assert (tmp_path / "kc").exists()  # a kubeconfig path the caller chose is left for the caller


def test_own_kubeconfig_is_removed_on_stop() -> None:
    with ClusterSimulator(start_delay_s=0.05) as cluster:
        path = cluster.kubeconfig_path
        assert "certificate-authority-data" in path.read_text()
    assert not path.exists()
    with pytest.raises(RuntimeError, match="not started"):
        _ = cluster.kubeconfig_path


def test_version_and_mode_options_are_validated() -> None:
    assert version_info("v1.31.2")["gitVersion"] == "v1.31.2-tke.1"
    with pytest.raises(ValueError, match="MAJOR.MINOR"):
        version_info("latest")
    with pytest.raises(ValueError, match="host is per Pod"):
        ClusterSimulator(network_mode="host")
    with pytest.raises(ValueError):
        ClusterSimulator(network_mode="flannel")
