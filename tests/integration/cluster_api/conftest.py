"""Fixtures: a cluster simulator API server on 127.0.0.1 and a real ``kubernetes`` client pointed at it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from emulators.cluster.server import ClusterApiServer
from emulators.cluster.store import ObjectStore


@dataclass
class Cluster:
    store: ObjectStore
    server: ClusterApiServer
    api: client.ApiClient
    kubeconfig: Path

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @property
    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    store = ObjectStore(history_size=40)
    server = ClusterApiServer.self_signed(store, bookmark_interval_s=0.2).start()
    kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    api = client.ApiClient(configuration)
    try:
        yield Cluster(store, server, api, kubeconfig)
    finally:
        api.close()
        server.stop()


def pod_manifest(name: str | None = "web-1", labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"labels": labels if labels is not None else {"app": "web"}}
    if name is None:
        metadata["generateName"] = "web-"
    else:
        metadata["name"] = name
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}], **spec},
    }


def error_body(exc: client.ApiException) -> dict[str, Any]:
    return json.loads(exc.body)
