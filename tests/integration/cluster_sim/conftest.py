"""Fixtures for the cluster simulator's behaviours: a store with scheduler, kubelet and controllers."""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from emulators.cluster.deployment import DeploymentController
from emulators.cluster.ipam import NetworkMode, PodIpam
from emulators.cluster.kubelet import Kubelet
from emulators.cluster.replicaset import ReplicaSetController
from emulators.cluster.scheduler import Scheduler, default_node_names
from emulators.cluster.store import ObjectStore


def http_get(ip: str, port: int, path: str = "/") -> tuple[int, dict[str, Any]] | None:
    """GET from a Pod server; None when nothing listens (connection refused/reset)."""
    try:
        with urllib.request.urlopen(f"http://{ip}:{port}{path}", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
    except (urllib.error.URLError, ConnectionError):
        return None


def condition(pod: dict[str, Any] | None, kind: str) -> dict[str, Any] | None:
    for item in ((pod or {}).get("status") or {}).get("conditions") or []:
        if item.get("type") == kind:
            return dict(item)
    return None


@dataclass
class Behaviours:
    store: ObjectStore
    kubelet: Kubelet

    def pod(self, name: str, namespace: str = "default") -> dict[str, Any] | None:
        return self.store.get("pods", namespace, name)


@contextlib.contextmanager
def running_behaviours(ipam: PodIpam | None = None, *, max_grace_s: float | None = 1.0) -> Iterator[Behaviours]:
    """Scheduler, kubelet (start delay 0.05 s, grace capped at `max_grace_s`) and controllers over a fresh store."""
    store = ObjectStore()
    nodes = default_node_names(3)
    kubelet = Kubelet(
        store,
        nodes=nodes,
        ipam=ipam or PodIpam(len(nodes)),
        default_mode=NetworkMode.VPC_CNI,
        start_delay_s=0.05,
        max_grace_s=max_grace_s,
    )
    parts = [
        Scheduler(store, nodes),
        kubelet,
        ReplicaSetController(store, resync_period_s=1.0),
        DeploymentController(store, resync_period_s=1.0),
    ]
    started = []
    try:
        for part in parts:
            part.start()
            started.append(part)
        yield Behaviours(store, kubelet)
    finally:
        for part in reversed(started):
            part.stop()


@pytest.fixture
def behaviours() -> Iterator[Behaviours]:
    with running_behaviours() as running:
        yield running
