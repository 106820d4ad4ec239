"""Contract: the simulator answers the real ``kubernetes`` client like a real apiserver (core/v1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kubernetes import client

from tests.integration.cluster_api.conftest import Cluster, error_body, pod_manifest


def test_create_fills_server_fields_and_generate_name(cluster: Cluster) -> None:
    pod = cluster.core.create_namespaced_pod("shop", pod_manifest(None))
    assert pod.metadata.name.startswith("web-") and len(pod.metadata.name) == 9
    assert pod.metadata.namespace == "shop"
    assert pod.metadata.uid and pod.metadata.creation_timestamp is not None
    assert int(pod.metadata.resource_version) > 0
    assert pod.kind == "Pod" and pod.api_version == "v1"
    assert pod.status.phase == "Pending"


def test_already_exists_and_not_found_bodies(cluster: Cluster) -> None:
    cluster.core.create_namespaced_pod("shop", pod_manifest())
    with pytest.raises(client.ApiException) as exists:
        cluster.core.create_namespaced_pod("shop", pod_manifest())
    assert exists.value.status == 409
    assert error_body(exists.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'pods "web-1" already exists',
        "reason": "AlreadyExists",
        "details": {"name": "web-1", "kind": "pods"},
        "code": 409,
    }
    with pytest.raises(client.ApiException) as missing:
        cluster.apps.read_namespaced_deployment("nope", "shop")
    assert missing.value.status == 404
    assert error_body(missing.value)["message"] == 'deployments.apps "nope" not found'
    assert error_body(missing.value)["details"] == {"name": "nope", "group": "apps", "kind": "deployments"}


def test_label_and_field_selectors(cluster: Cluster) -> None:
    core = cluster.core
    core.create_namespaced_pod("shop", pod_manifest("a", {"app": "web", "tier": "x"}))
    core.create_namespaced_pod("shop", pod_manifest("b", {"app": "web", "tier": "y", "canary": "1"}))
    core.create_namespaced_pod("shop", pod_manifest("c", {"app": "db"}))
    core.create_namespaced_pod("other", pod_manifest("d", {"app": "web"}))

    def names(**kwargs: str) -> list[str]:
        return sorted(p.metadata.name for p in core.list_namespaced_pod("shop", **kwargs).items)

    assert names(label_selector="app=web") == ["a", "b"]
    assert names(label_selector="app==web,tier in (x,z)") == ["a"]
    assert names(label_selector="tier notin (x)") == ["b", "c"]
    assert names(label_selector="app!=web") == ["c"]
    assert names(label_selector="canary") == ["b"]
    assert names(label_selector="app,!canary") == ["a", "c"]
    assert names(field_selector="metadata.name=c") == ["c"]
    assert names(field_selector="status.phase=Pending,metadata.name!=a") == ["b", "c"]
    everywhere = core.list_pod_for_all_namespaces(label_selector="app=web")
    assert sorted(p.metadata.name for p in everywhere.items) == ["a", "b", "d"]
    assert int(everywhere.metadata.resource_version) >= 4
    with pytest.raises(client.ApiException) as bad:
        core.list_namespaced_pod("shop", field_selector="spec.containers=x")
    assert bad.value.status == 400
    assert error_body(bad.value)["message"] == "field label not supported: spec.containers"


def test_pagination_with_limit_and_continue(cluster: Cluster) -> None:
    for i in range(5):
        cluster.core.create_namespaced_config_map("ns", {"metadata": {"name": f"cm-{i}"}})
    first = cluster.core.list_namespaced_config_map("ns", limit=3)
    assert [c.metadata.name for c in first.items] == ["cm-0", "cm-1", "cm-2"]
    rest = cluster.core.list_namespaced_config_map("ns", limit=3, _continue=first.metadata._continue)
    assert [c.metadata.name for c in rest.items] == ["cm-3", "cm-4"]
    assert rest.metadata._continue is None


def test_replace_with_a_stale_resource_version_is_a_conflict(cluster: Cluster) -> None:
    cm = cluster.core.create_namespaced_config_map("ns", {"metadata": {"name": "c"}, "data": {"k": "1"}})
    cm.data = {"k": "2"}
    updated = cluster.core.replace_namespaced_config_map("c", "ns", cm)
    assert updated.data == {"k": "2"}
    cm.data = {"k": "3"}  # still carries the old resourceVersion
    with pytest.raises(client.ApiException) as caught:
        cluster.core.replace_namespaced_config_map("c", "ns", cm)
    assert caught.value.status == 409
    assert error_body(caught.value)["message"] == (
        'Operation cannot be fulfilled on configmaps "c": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )


def test_condition_patch_on_pod_status_keeps_other_conditions(cluster: Cluster) -> None:
    core = cluster.core
    pod = core.create_namespaced_pod("shop", pod_manifest(readinessGates=[{"conditionType": "lb/ready"}]))
    kubelet = {
        "status": {
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "ReadinessGatesNotReady"},
                {"type": "ContainersReady", "status": "True"},
            ]
        }
    }
    core.patch_namespaced_pod_status("web-1", "shop", kubelet)
    gate = {
        "metadata": {"uid": pod.metadata.uid},
        "status": {
            "conditions": [{"type": "lb/ready", "status": "True", "lastTransitionTime": "2025-01-01T00:00:00Z"}]
        },
    }
    result = core.patch_namespaced_pod_status("web-1", "shop", gate)
    conditions = {c.type: c.status for c in result.status.conditions}
    assert conditions == {"Ready": "False", "ContainersReady": "True", "lb/ready": "True"}
    assert result.spec.readiness_gates[0].condition_type == "lb/ready"
    with pytest.raises(client.ApiException) as wrong_uid:
        core.patch_namespaced_pod_status("web-1", "shop", {"metadata": {"uid": "not-it"}, "status": {}})
    assert wrong_uid.value.status == 422  # the real server: metadata.uid is immutable (tests/integration/controlplane)
    merged = core.patch_namespaced_pod_status(
        "web-1",
        "shop",
        {"status": {"conditions": [{"type": "X", "status": "True"}]}},
        _content_type="application/merge-patch+json",
    )
    assert [c.type for c in merged.status.conditions] == ["X"]  # RFC 7386 replaces the list


def test_status_writes_are_isolated(cluster: Cluster) -> None:
    core = cluster.core
    core.create_namespaced_pod("shop", pod_manifest())
    main = core.patch_namespaced_pod("web-1", "shop", {"status": {"phase": "Running"}})
    assert main.status.phase == "Pending"
    status = core.patch_namespaced_pod_status(
        "web-1",
        "shop",
        {"spec": {"nodeName": "n1"}, "metadata": {"labels": {"s": "1"}}, "status": {"phase": "Running"}},
    )
    assert status.status.phase == "Running" and status.spec.node_name is None and status.metadata.labels["s"] == "1"
    with pytest.raises(client.ApiException) as immutable:
        core.patch_namespaced_pod("web-1", "shop", {"spec": {"readinessGates": [{"conditionType": "late"}]}})
    assert immutable.value.status == 422


def test_json_patch_and_unknown_patch_type(cluster: Cluster) -> None:
    core = cluster.core
    core.create_namespaced_pod("shop", pod_manifest())
    patched = core.patch_namespaced_pod("web-1", "shop", [{"op": "add", "path": "/metadata/labels/x", "value": "y"}])
    assert patched.metadata.labels["x"] == "y"
    with pytest.raises(client.ApiException) as failed_test:
        core.patch_namespaced_pod("web-1", "shop", [{"op": "test", "path": "/metadata/labels/x", "value": "z"}])
    assert failed_test.value.status == 422
    with pytest.raises(client.ApiException) as unknown:
        core.patch_namespaced_pod("web-1", "shop", {"metadata": {}}, _content_type="application/yaml")
    assert unknown.value.status == 415
    assert error_body(unknown.value)["reason"] == "UnsupportedMediaType"


def test_binding_then_graceful_delete(cluster: Cluster) -> None:
    core = cluster.core
    core.create_namespaced_pod("shop", pod_manifest())
    # The real apiserver answers a binding with a Status, which the client cannot parse as a V1Binding
    # (kubernetes-client/python#825), so read the raw response.
    response = core.create_namespaced_pod_binding(
        "web-1",
        "shop",
        {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": "web-1"},
            "target": {"kind": "Node", "name": "n1"},
        },
        _preload_content=False,
    )
    assert response.status == 201 and json.loads(response.data)["status"] == "Success"
    assert core.read_namespaced_pod("web-1", "shop").spec.node_name == "n1"
    terminating = core.delete_namespaced_pod("web-1", "shop", grace_period_seconds=20)
    assert terminating.metadata.deletion_timestamp is not None
    assert terminating.metadata.deletion_grace_period_seconds == 20
    assert core.read_namespaced_pod("web-1", "shop").metadata.deletion_timestamp is not None
    core.delete_namespaced_pod("web-1", "shop", grace_period_seconds=0)
    with pytest.raises(client.ApiException) as gone:
        core.read_namespaced_pod("web-1", "shop")
    assert gone.value.status == 404


def test_services_configmaps_secrets_namespaces(cluster: Cluster) -> None:
    core = cluster.core
    core.create_namespace({"metadata": {"name": "team", "labels": {"env": "prod"}}})
    svc = core.create_namespaced_service(
        "team",
        {
            "metadata": {"name": "web", "annotations": {"service.cloud.tencent.com/direct-access": "true"}},
            "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    )
    assert svc.spec.cluster_ip and svc.spec.ports[0].node_port
    status = core.patch_namespaced_service_status(
        "web", "team", {"status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}}
    )
    assert status.status.load_balancer.ingress[0].ip == "1.2.3.4"
    relabelled = core.patch_namespaced_service(
        "web", "team", {"metadata": {"labels": {"a": "b"}}, "status": {"loadBalancer": {}}}
    )
    assert relabelled.status.load_balancer.ingress[0].ip == "1.2.3.4"
    secret = core.create_namespaced_secret("team", {"metadata": {"name": "s"}, "data": {"k": "dg=="}})
    assert secret.type == "Opaque"
    deleted = core.delete_namespaced_secret("s", "team")
    assert deleted["status"] == "Success" and deleted["details"]["kind"] == "secrets"
    assert [n.metadata.name for n in core.list_namespace(label_selector="env=prod").items] == ["team"]
    assert core.read_namespace("team").metadata.labels["kubernetes.io/metadata.name"] == "team"


def test_core_and_events_v1_share_storage(cluster: Cluster) -> None:
    core_event = cluster.core.create_namespaced_event(
        "shop",
        {
            "metadata": {"name": "web-1.abc"},
            "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "shop"},
            "reason": "Bound",
            "message": "bound to CLB",
            "type": "Normal",
            "source": {"component": "clb-direct"},
        },
    )
    events_api = client.EventsV1Api(cluster.api)
    seen = events_api.read_namespaced_event("web-1.abc", "shop")
    assert seen.note == "bound to CLB" and seen.regarding.name == "web-1" and seen.event_time is not None
    created = events_api.create_namespaced_event(
        "shop",
        {
            "metadata": {"name": "web-1.def"},
            "eventTime": "2025-01-01T00:00:00.000000Z",
            "reportingController": "clb-direct",
            "reportingInstance": "flip-1",
            "action": "Flip",
            "reason": "GateReady",
            "type": "Normal",
            "note": "ok",
            "regarding": {"kind": "Pod", "name": "web-1", "namespace": "shop"},
        },
    )
    assert created.reporting_controller == "clb-direct"
    legacy = cluster.core.read_namespaced_event("web-1.def", "shop")
    assert legacy.message == "ok" and legacy.reporting_component == "clb-direct"
    listed = cluster.core.list_namespaced_event("shop", field_selector="involvedObject.name=web-1")
    assert sorted(e.metadata.name for e in listed.items) == [core_event.metadata.name, "web-1.def"]
    with pytest.raises(client.ApiException) as invalid:
        events_api.create_namespaced_event(
            "shop", {"metadata": {"name": "x"}, "eventTime": "2025-01-01T00:00:00.000000Z", "reason": "R"}
        )
    assert invalid.value.status == 422


def test_version_and_discovery(cluster: Cluster) -> None:
    version = client.VersionApi(cluster.api).get_code()
    assert (version.major, version.minor) == ("1", "33")
    groups = client.ApisApi(cluster.api).get_api_versions()
    names = {g.name for g in groups.groups}
    assert {"apps", "admissionregistration.k8s.io", "events.k8s.io", "cloud.tencent.com"} <= names
    resources = client.CoreV1Api(cluster.api).get_api_resources()
    assert {"pods", "pods/status", "services", "configmaps"} <= {r.name for r in resources.resources}


def test_requests_without_the_token_are_unauthorized(cluster: Cluster, tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(cluster.server.ca_pem or b"")
    configuration = client.Configuration()
    configuration.host = cluster.server.url
    configuration.ssl_ca_cert = str(ca_file)
    anonymous = client.ApiClient(configuration)
    try:
        with pytest.raises(client.ApiException) as caught:
            client.CoreV1Api(anonymous).list_namespace()
        assert caught.value.status == 401
    finally:
        anonymous.close()
