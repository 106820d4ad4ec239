"""Every built-in object the simulator returns validates against the published Kubernetes 1.33 schemas."""

from __future__ import annotations

import json

import kubernetes_validate
from kubernetes import client

from tests.integration.cluster_api.conftest import Cluster, pod_manifest

K8S_VERSION = "1.33"


def raw(response: object) -> dict:
    return json.loads(response.data)  # type: ignore[attr-defined]


def test_returned_builtin_objects_validate_strictly(cluster: Cluster) -> None:
    core, apps = cluster.core, cluster.apps
    events_v1 = client.EventsV1Api(cluster.api)
    admission = client.AdmissionregistrationV1Api(cluster.api)
    core.create_namespace({"metadata": {"name": "shop"}})
    core.create_namespaced_pod("shop", pod_manifest(None, readinessGates=[{"conditionType": "lb/ready"}]))
    pod_name = core.list_namespaced_pod("shop").items[0].metadata.name
    core.create_namespaced_pod_binding(
        pod_name,
        "shop",
        {"metadata": {"name": pod_name}, "target": {"kind": "Node", "name": "n1"}},
        _preload_content=False,
    )
    core.patch_namespaced_pod_status(
        pod_name,
        "shop",
        {
            "status": {
                "phase": "Running",
                "podIP": "127.0.1.5",
                "podIPs": [{"ip": "127.0.1.5"}],
                "conditions": [{"type": "lb/ready", "status": "True", "lastTransitionTime": "2025-01-01T00:00:00Z"}],
            }
        },
    )
    core.create_namespaced_service(
        "shop",
        {
            "metadata": {"name": "web"},
            "spec": {
                "type": "LoadBalancer",
                "selector": {"app": "web"},
                "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
            },
        },
    )
    core.create_namespaced_config_map("shop", {"metadata": {"name": "cm"}, "data": {"k": "v"}})
    secret = core.create_namespaced_secret("shop", {"metadata": {"name": "s"}, "stringData": {"k": "v"}})
    assert secret.data == {"k": "dg=="} and secret.string_data is None
    core.create_namespaced_event(
        "shop",
        {
            "metadata": {"generateName": "web."},
            "involvedObject": {"kind": "Pod", "name": pod_name, "namespace": "shop"},
            "reason": "Bound",
            "message": "m",
            "type": "Normal",
            "count": 1,
            "firstTimestamp": "2025-01-01T00:00:00Z",
            "lastTimestamp": "2025-01-01T00:00:00Z",
        },
    )
    events_v1.create_namespaced_event(
        "shop",
        {
            "metadata": {"name": "web.v1"},
            "eventTime": "2025-01-01T00:00:00.000000Z",
            "reportingController": "c",
            "reportingInstance": "i",
            "action": "A",
            "reason": "R",
            "type": "Normal",
            "regarding": {"kind": "Pod", "name": pod_name, "namespace": "shop"},
        },
    )
    apps.create_namespaced_deployment(
        "shop",
        {
            "metadata": {"name": "web"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "a", "image": "nginx"}]},
                },
            },
        },
    )
    apps.create_namespaced_replica_set(
        "shop",
        {
            "metadata": {"name": "web-1"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "a", "image": "nginx"}]},
                },
            },
        },
    )
    admission.create_mutating_webhook_configuration(
        {
            "metadata": {"name": "clb-direct"},
            "webhooks": [
                {
                    "name": "gate.clb.example.com",
                    "clientConfig": {"url": "https://127.0.0.1:9443/admit"},
                    "rules": [
                        {"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}
                    ],
                    "sideEffects": "None",
                    "admissionReviewVersions": ["v1"],
                }
            ],
        }
    )

    documents = [
        raw(core.list_namespace(_preload_content=False)),
        raw(core.list_namespaced_pod("shop", _preload_content=False)),
        raw(core.list_namespaced_service("shop", _preload_content=False)),
        raw(core.list_namespaced_config_map("shop", _preload_content=False)),
        raw(core.list_namespaced_secret("shop", _preload_content=False)),
        raw(core.list_namespaced_event("shop", _preload_content=False)),
        raw(events_v1.list_namespaced_event("shop", _preload_content=False)),
        raw(apps.list_namespaced_deployment("shop", _preload_content=False)),
        raw(apps.list_namespaced_replica_set("shop", _preload_content=False)),
        raw(admission.list_mutating_webhook_configuration(_preload_content=False)),
        raw(apps.read_namespaced_deployment_scale("web", "shop", _preload_content=False)),
    ]
    kinds = set()
    for document in documents:
        for item in document.get("items", [document]):
            # Items in a list carry their own kind/apiVersion, as the real server's do.
            assert {"kind", "apiVersion"} <= set(item)
            assert kubernetes_validate.validate(item, K8S_VERSION, strict=True)
            kinds.add((item["apiVersion"], item["kind"]))
        if "items" in document:
            assert kubernetes_validate.validate(document, K8S_VERSION, strict=True)
    assert kinds == {
        ("v1", "Namespace"),
        ("v1", "Pod"),
        ("v1", "Service"),
        ("v1", "ConfigMap"),
        ("v1", "Secret"),
        ("v1", "Event"),
        ("events.k8s.io/v1", "Event"),
        ("apps/v1", "Deployment"),
        ("apps/v1", "ReplicaSet"),
        ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"),
        ("autoscaling/v1", "Scale"),
    }
