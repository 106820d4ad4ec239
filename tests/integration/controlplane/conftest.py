"""The real control plane tier: one etcd + kube-apiserver + kube-controller-manager per test session.

The binaries are the pinned upstream builds of `scripts/build-k8s.sh` (`.ci/run` builds them; a run
without them fails here, saying to run the script). The session's `RealCluster` has its audit webhook
pointed at `relay_port`, where each test's relay (the demo stack's, or one of its own) listens, and our
node agent registers three nodes and runs every Pod on a loopback IP with real HTTP servers.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from emulators.controlplane.binaries import BinariesMissing
from emulators.controlplane.cluster import RealCluster
from emulators.controlplane.pki import write_relay_serving
from tests.support.net import free_port


@pytest.fixture(scope="session")
def relay_port() -> int:
    """Where the audit webhook of the session's API server delivers: the relay under test binds it."""
    return free_port()


@pytest.fixture(scope="session")
def real_cluster(tmp_path_factory: pytest.TempPathFactory, relay_port: int) -> Iterator[RealCluster]:
    state: Path = tmp_path_factory.mktemp("control-plane")
    try:
        cluster = RealCluster(
            state_dir=state,
            audit_url=f"https://127.0.0.1:{relay_port}/audit",
            relay_serving=write_relay_serving(state / "relay-tls"),
            audit_batch_wait_s=1.0,
            audit_token=secrets.token_hex(16),  # what each test's relay must check (LocalStack reads it)
            start_delay_s=0.2,
            max_grace_s=5.0,
        )
    except BinariesMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def admin(real_cluster: RealCluster) -> Iterator[client.ApiClient]:
    with real_cluster.admin_client() as api:
        yield api


@pytest.fixture
def namespace(admin: client.ApiClient) -> Iterator[str]:
    """A fresh namespace with its default ServiceAccount (Pods are refused before the controller makes it)."""
    import uuid

    from tests.support.polling import eventually

    core = client.CoreV1Api(admin)
    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})

    def has_default_account() -> bool:
        return any(sa.metadata.name == "default" for sa in core.list_namespaced_service_account(name).items)

    eventually(has_default_account, f"ServiceAccount {name}/default", timeout=90)
    try:
        yield name
    finally:
        core.delete_namespace(name)
