"""The real audit webhook authenticates to the relay with the token of its kubeconfig, and only that token.

The session's kube-apiserver was started with an audit webhook kubeconfig whose user carries
`RealCluster.audit_token` and whose cluster is the relay's https endpoint on `relay_port`. A relay that
checks another token must answer every delivery 401 and queue nothing; one that checks the cluster's
token must receive the EventLists (and batch the objects) without a single 401.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from kubernetes import client

from emulators.controlplane.cluster import RealCluster
from relay.app import Relay
from relay.auth import AuditAuth
from relay.batcher import Batcher, BatcherConfig
from tests.integration.controlplane.test_relay_watch import RecordingRouter
from tests.support.polling import eventually


@contextmanager
def audit_relay(cluster: RealCluster, port: int, token: str, router: RecordingRouter) -> Iterator[Relay]:
    assert cluster.relay_serving is not None, "the session cluster delivers audit batches over https"
    batcher = Batcher(
        BatcherConfig(router_url="http://router.invalid/router", hmac_key=b"k" * 32, window_s=0.2), post=router.post
    )
    relay = Relay(
        batcher=batcher,
        sources=["audit"],
        audit_auth=AuditAuth(token=token),
        port=port,
        tls_cert=str(cluster.relay_serving.cert),
        tls_key=str(cluster.relay_serving.key),
    )
    relay.start()
    try:
        yield relay
    finally:
        relay.stop()


def _create_service(core: client.CoreV1Api, namespace: str, name: str) -> None:
    core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": name, "annotations": {"service.cloud.tencent.com/direct-access": "true"}},
            "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    )


def _audited_names(router: RecordingRouter) -> set[str]:
    return {
        str(((item.get("event") or {}).get("objectRef") or {}).get("name"))
        for item in router.items
        if item.get("source") == "audit"
    }


def test_the_real_audit_webhook_presents_its_kubeconfig_token_and_nothing_else_gets_in(
    real_cluster: RealCluster, relay_port: int, admin: client.ApiClient, namespace: str
) -> None:
    assert real_cluster.audit_token, "the session cluster's audit kubeconfig carries a token"
    core = client.CoreV1Api(admin)

    refused = RecordingRouter()
    with audit_relay(real_cluster, relay_port, f"not-{real_cluster.audit_token}", refused) as relay:
        _create_service(core, namespace, f"refused-{uuid.uuid4().hex[:6]}")
        eventually(
            lambda: relay.counters["audit_unauthenticated"] > 0, "the API server's delivery refused with 401", 60
        )
        assert relay.counters["audit_received"] == 0 and refused.items == []

    accepted = RecordingRouter()
    with audit_relay(real_cluster, relay_port, real_cluster.audit_token, accepted) as relay:
        name = f"accepted-{uuid.uuid4().hex[:6]}"
        _create_service(core, namespace, name)
        eventually(lambda: name in _audited_names(accepted), f"the audit event of Service {name} batched", 60)
        assert relay.counters["audit_received"] > 0
        assert relay.counters["audit_unauthenticated"] == 0, "the API server presented the token on every delivery"
