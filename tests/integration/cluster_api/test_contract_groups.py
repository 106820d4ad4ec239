"""Contract: apps/v1, admissionregistration, the TkeServiceConfig custom resource, and watch semantics."""

from __future__ import annotations

import pytest
from kubernetes import client, watch

from tests.integration.cluster_api.conftest import Cluster, error_body, pod_manifest

GROUP, VERSION, PLURAL = "cloud.tencent.com", "v1alpha1", "tkeserviceconfigs"


def deployment(name: str = "web", replicas: int = 2) -> dict:
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]},
            },
        },
    }


def test_deployment_scale_status_and_generation(cluster: Cluster) -> None:
    apps = cluster.apps
    created = apps.create_namespaced_deployment("shop", deployment())
    assert created.metadata.generation == 1
    assert created.spec.strategy.rolling_update.max_surge == "25%"
    scale = apps.read_namespaced_deployment_scale("web", "shop")
    assert scale.spec.replicas == 2 and scale.status.selector == "app=web"
    apps.patch_namespaced_deployment_scale("web", "shop", {"spec": {"replicas": 4}})
    after = apps.read_namespaced_deployment("web", "shop")
    assert after.spec.replicas == 4 and after.metadata.generation == 2
    status = apps.patch_namespaced_deployment_status(
        "web",
        "shop",
        {
            "status": {
                "observedGeneration": 2,
                "replicas": 4,
                "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}],
            }
        },
    )
    assert status.status.observed_generation == 2 and status.metadata.generation == 2
    relabelled = apps.patch_namespaced_deployment("web", "shop", {"metadata": {"labels": {"x": "y"}}})
    assert relabelled.metadata.generation == 2 and relabelled.status.replicas == 4


def test_replicaset_status_and_scale(cluster: Cluster) -> None:
    apps = cluster.apps
    apps.create_namespaced_replica_set("shop", deployment("rs"))
    apps.replace_namespaced_replica_set_scale(
        "rs", "shop", {"metadata": {"name": "rs", "namespace": "shop"}, "spec": {"replicas": 0}}
    )
    status = apps.replace_namespaced_replica_set_status(
        "rs",
        "shop",
        {
            **apps.read_namespaced_replica_set("rs", "shop").to_dict(),
            "status": {"replicas": 0, "observedGeneration": 2},
        },
    )
    assert status.spec.replicas == 0 and status.status.observed_generation == 2


def test_mutating_webhook_configuration_merges_webhooks_by_name(cluster: Cluster) -> None:
    api = client.AdmissionregistrationV1Api(cluster.api)
    api.create_mutating_webhook_configuration(
        {
            "metadata": {"name": "clb-direct"},
            "webhooks": [
                {
                    "name": "a.clb.example.com",
                    "clientConfig": {"url": "https://127.0.0.1:1/a"},
                    "sideEffects": "None",
                    "admissionReviewVersions": ["v1"],
                },
                {
                    "name": "b.clb.example.com",
                    "clientConfig": {"url": "https://127.0.0.1:1/b"},
                    "sideEffects": "None",
                    "admissionReviewVersions": ["v1"],
                },
            ],
        }
    )
    patched = api.patch_mutating_webhook_configuration(
        "clb-direct", {"webhooks": [{"name": "b.clb.example.com", "clientConfig": {"caBundle": "Y2E="}}]}
    )
    by_name = {w.name: w for w in patched.webhooks}
    assert set(by_name) == {"a.clb.example.com", "b.clb.example.com"}
    assert by_name["b.clb.example.com"].client_config.ca_bundle == "Y2E="
    assert by_name["b.clb.example.com"].client_config.url == "https://127.0.0.1:1/b"
    assert by_name["a.clb.example.com"].failure_policy == "Fail"
    stale = api.read_mutating_webhook_configuration("clb-direct")
    stale.metadata.labels = {"rotated": "1"}
    api.replace_mutating_webhook_configuration("clb-direct", stale)
    with pytest.raises(client.ApiException) as conflict:
        api.replace_mutating_webhook_configuration("clb-direct", stale)
    assert conflict.value.status == 409


def test_custom_resource_verbs_and_strategic_merge_refusal(cluster: Cluster) -> None:
    custom = cluster.custom
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TkeServiceConfig",
        "metadata": {"name": "web", "labels": {"a": "b"}},
        "spec": {"loadBalancer": {"l4Listeners": [{"protocol": "TCP", "port": 80}]}},
    }
    created = custom.create_namespaced_custom_object(GROUP, VERSION, "shop", PLURAL, body)
    assert created["metadata"]["generation"] == 1 and "status" not in created
    listed = custom.list_namespaced_custom_object(GROUP, VERSION, "shop", PLURAL, label_selector="a=b")
    assert [i["metadata"]["name"] for i in listed["items"]] == ["web"]
    assert listed["kind"] == "TkeServiceConfigList"
    merged = custom.patch_namespaced_custom_object(GROUP, VERSION, "shop", PLURAL, "web", {"spec": {"extra": 1}})
    assert merged["spec"]["extra"] == 1 and merged["metadata"]["generation"] == 2
    with pytest.raises(client.ApiException) as smp:
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, "shop", PLURAL, "web", {"spec": {}}, _content_type="application/strategic-merge-patch+json"
        )
    assert smp.value.status == 415
    assert error_body(smp.value)["message"].startswith("the body of the request was in an unknown format")
    status = custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, "shop", PLURAL, "web", {"status": {"observed": True}, "spec": {"ignored": True}}
    )
    assert status["status"] == {"observed": True} and "ignored" not in status["spec"]
    without_rv = {k: v for k, v in merged.items() if k != "metadata"} | {"metadata": {"name": "web"}}
    with pytest.raises(client.ApiException) as no_rv:
        custom.replace_namespaced_custom_object(GROUP, VERSION, "shop", PLURAL, "web", without_rv)
    assert no_rv.value.status == 422
    custom.delete_namespaced_custom_object(GROUP, VERSION, "shop", PLURAL, "web")
    with pytest.raises(client.ApiException) as gone:
        custom.get_namespaced_custom_object(GROUP, VERSION, "shop", PLURAL, "web")
    assert error_body(gone.value)["message"] == 'tkeserviceconfigs.cloud.tencent.com "web" not found'


def test_watch_streams_added_modified_deleted_from_a_resource_version(cluster: Cluster) -> None:
    core = cluster.core
    start = core.list_namespaced_pod("shop").metadata.resource_version
    core.create_namespaced_pod("shop", pod_manifest("a"))
    core.patch_namespaced_pod("a", "shop", {"metadata": {"labels": {"v": "2"}}})
    core.delete_namespaced_pod("a", "shop")
    core.create_namespaced_pod("shop", pod_manifest("other", {"app": "db"}))
    stream = watch.Watch().stream(
        core.list_namespaced_pod, "shop", label_selector="app=web", resource_version=start, timeout_seconds=2
    )
    events = [(e["type"], e["object"].metadata.name) for e in stream]
    assert events == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]


def test_watch_without_resource_version_sends_synthetic_added_and_bookmarks(cluster: Cluster) -> None:
    core = cluster.core
    core.create_namespaced_config_map("ns", {"metadata": {"name": "existing"}})
    seen = []
    for event in watch.Watch().stream(
        core.list_namespaced_config_map, "ns", allow_watch_bookmarks=True, timeout_seconds=3
    ):
        seen.append(event)
        if event["type"] == "BOOKMARK":
            break
    assert seen[0]["type"] == "ADDED" and seen[0]["object"].metadata.name == "existing"
    bookmark = seen[-1]
    assert bookmark["type"] == "BOOKMARK"
    assert bookmark["object"]["kind"] == "ConfigMap"
    assert int(bookmark["object"]["metadata"]["resourceVersion"]) >= int(seen[0]["object"].metadata.resource_version)


def test_watch_from_an_expired_resource_version_gets_410(cluster: Cluster) -> None:
    core = cluster.core
    old = core.create_namespaced_config_map("ns", {"metadata": {"name": "c"}}).metadata.resource_version
    for i in range(45):  # the fixture keeps 40 changes of history
        core.patch_namespaced_config_map("c", "ns", {"data": {"i": str(i)}})
    with pytest.raises(client.ApiException) as caught:
        list(watch.Watch().stream(core.list_namespaced_config_map, "ns", resource_version=old, timeout_seconds=5))
    assert caught.value.status == 410
    assert "too old resource version" in caught.value.reason


def test_watch_on_events_v1_converts_objects(cluster: Cluster) -> None:
    cluster.core.create_namespaced_event(
        "shop",
        {"metadata": {"name": "e1"}, "involvedObject": {"kind": "Pod", "name": "p"}, "reason": "R", "message": "m"},
    )
    events_api = client.EventsV1Api(cluster.api)
    stream = watch.Watch().stream(events_api.list_namespaced_event, "shop", timeout_seconds=1)
    notes = [(e["type"], e["object"].note) for e in stream]
    assert notes == [("ADDED", "m")]
