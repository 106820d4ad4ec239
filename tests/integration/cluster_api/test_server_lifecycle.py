"""Stopping the API server ends open watch streams and leaves no serving threads behind."""

from __future__ import annotations

import threading
from pathlib import Path

from kubernetes import client, config, watch

from emulators.cluster.server import ClusterApiServer
from emulators.cluster.store import ObjectStore
from tests.support.polling import eventually


def test_stop_ends_watches_and_threads(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    store = ObjectStore()
    server = ClusterApiServer.self_signed(store).start()
    configuration = client.Configuration()
    config.load_kube_config(
        config_file=str(server.write_kubeconfig(tmp_path / "kc")), client_configuration=configuration
    )
    api = client.ApiClient(configuration)
    events: list[str] = []
    ended = threading.Event()

    def consume() -> None:
        try:
            for event in watch.Watch().stream(client.CoreV1Api(api).list_namespaced_pod, "ns", timeout_seconds=600):
                events.append(event["type"])
        finally:
            ended.set()

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    store.create("pods", "ns", {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}})
    eventually(lambda: events == ["ADDED"], "the ADDED watch event")
    server.stop()
    assert ended.wait(30), "the watch stream did not end when the server stopped"
    consumer.join(30)
    api.close()
    eventually(lambda: not [t for t in set(threading.enumerate()) - before if t.is_alive()], "server threads to end")
