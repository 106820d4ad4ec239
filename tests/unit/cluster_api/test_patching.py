"""JSON patch, merge patch and strategic merge patch behave like the apiserver's for built-ins and CRDs."""

from __future__ import annotations

import pytest

from emulators.cluster.errors import ApiError
from emulators.cluster.patching import JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, apply_patch
from emulators.cluster.resources import RESOURCES

PODS = RESOURCES["pods"]


def pod() -> dict:
    return {
        "metadata": {
            "name": "web-1",
            "labels": {"app": "web"},
            "finalizers": ["a"],
            "ownerReferences": [{"uid": "u1", "name": "rs-1", "kind": "ReplicaSet", "apiVersion": "apps/v1"}],
        },
        "spec": {
            "containers": [
                {"name": "app", "image": "nginx:1", "env": [{"name": "A", "value": "1"}]},
                {"name": "sidecar", "image": "envoy:1"},
            ],
            "readinessGates": [{"conditionType": "g1"}],
            "volumes": [{"name": "data", "emptyDir": {}}],
        },
        "status": {
            "conditions": [
                {"type": "Ready", "status": "False"},
                {"type": "ContainersReady", "status": "True"},
                {"type": "g1", "status": "False", "reason": "Waiting"},
            ],
            "podIPs": [{"ip": "10.0.0.1"}],
            "containerStatuses": [{"name": "app", "ready": True}, {"name": "sidecar", "ready": True}],
        },
    }


def smp(patch: dict) -> dict:
    return apply_patch(PODS, pod(), patch, STRATEGIC_MERGE_PATCH)


def test_condition_patch_merges_by_type_and_keeps_the_others() -> None:
    result = smp({"status": {"conditions": [{"type": "g1", "status": "True"}]}})
    assert result["status"]["conditions"] == [
        {"type": "Ready", "status": "False"},
        {"type": "ContainersReady", "status": "True"},
        {"type": "g1", "status": "True", "reason": "Waiting"},
    ]


def test_new_condition_is_appended_and_set_element_order_reorders() -> None:
    result = smp(
        {
            "status": {
                "$setElementOrder/conditions": [{"type": "g2"}, {"type": "Ready"}, {"type": "ContainersReady"}],
                "conditions": [{"type": "g2", "status": "True"}],
            }
        }
    )
    assert [c["type"] for c in result["status"]["conditions"]] == ["g2", "Ready", "ContainersReady", "g1"]


def test_merge_patch_replaces_the_whole_condition_list() -> None:
    result = apply_patch(PODS, pod(), {"status": {"conditions": [{"type": "g1", "status": "True"}]}}, MERGE_PATCH)
    assert result["status"]["conditions"] == [{"type": "g1", "status": "True"}]


def test_atomic_lists_are_replaced() -> None:
    result = smp(
        {
            "spec": {"readinessGates": [{"conditionType": "g2"}]},
            "status": {"containerStatuses": [{"name": "app", "ready": False}]},
        }
    )
    assert result["spec"]["readinessGates"] == [{"conditionType": "g2"}]
    assert result["status"]["containerStatuses"] == [{"name": "app", "ready": False}]


def test_containers_merge_by_name_recursively() -> None:
    result = smp({"spec": {"containers": [{"name": "app", "image": "nginx:2", "env": [{"name": "B", "value": "2"}]}]}})
    app, sidecar = result["spec"]["containers"]
    assert app["image"] == "nginx:2"
    assert app["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    assert sidecar == {"name": "sidecar", "image": "envoy:1"}


def test_patch_delete_directive_removes_a_list_element_and_null_removes_a_key() -> None:
    result = smp(
        {
            "metadata": {"labels": {"app": None}},
            "spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]},
            "status": {"podIPs": [{"ip": "10.0.0.1", "$patch": "delete"}]},
        }
    )
    assert result["metadata"]["labels"] == {}
    assert [c["name"] for c in result["spec"]["containers"]] == ["app"]
    assert result["status"]["podIPs"] == []


def test_patch_replace_directive_on_a_list_and_on_a_map() -> None:
    result = smp(
        {
            "spec": {"volumes": [{"name": "only", "emptyDir": {}}, {"$patch": "replace"}]},
            "metadata": {"labels": {"new": "x", "$patch": "replace"}},
        }
    )
    assert result["spec"]["volumes"] == [{"name": "only", "emptyDir": {}}]
    assert result["metadata"]["labels"] == {"new": "x"}


def test_retain_keys_drops_unlisted_fields() -> None:
    result = smp(
        {"spec": {"volumes": [{"name": "data", "hostPath": {"path": "/x"}, "$retainKeys": ["name", "hostPath"]}]}}
    )
    assert result["spec"]["volumes"] == [{"name": "data", "hostPath": {"path": "/x"}}]


def test_primitive_merge_list_and_delete_from_primitive_list() -> None:
    added = smp({"metadata": {"finalizers": ["b"]}})
    assert added["metadata"]["finalizers"] == ["a", "b"]
    removed = smp({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}})
    assert removed["metadata"]["finalizers"] == []


def test_owner_references_merge_by_uid() -> None:
    result = smp(
        {
            "metadata": {
                "ownerReferences": [{"uid": "u2", "name": "rs-2", "kind": "ReplicaSet", "apiVersion": "apps/v1"}]
            }
        }
    )
    assert [r["uid"] for r in result["metadata"]["ownerReferences"]] == ["u1", "u2"]


def test_webhooks_merge_by_name() -> None:
    mwc = {"webhooks": [{"name": "a.x", "timeoutSeconds": 5}, {"name": "b.x", "timeoutSeconds": 5}]}
    result = apply_patch(
        RESOURCES["mutatingwebhookconfigurations"],
        mwc,
        {"webhooks": [{"name": "b.x", "timeoutSeconds": 9}]},
        STRATEGIC_MERGE_PATCH,
    )
    assert result["webhooks"] == [{"name": "a.x", "timeoutSeconds": 5}, {"name": "b.x", "timeoutSeconds": 9}]


def test_json_patch_applies_and_a_failed_test_is_a_422() -> None:
    result = apply_patch(PODS, pod(), [{"op": "add", "path": "/metadata/labels/x", "value": "y"}], JSON_PATCH)
    assert result["metadata"]["labels"]["x"] == "y"
    with pytest.raises(ApiError) as caught:
        apply_patch(PODS, pod(), [{"op": "test", "path": "/metadata/name", "value": "other"}], JSON_PATCH)
    assert caught.value.code == 422
    with pytest.raises(ApiError) as missing:
        apply_patch(PODS, pod(), [{"op": "add", "path": "/spec/tolerations/-", "value": {}}], JSON_PATCH)
    assert missing.value.code == 422


def test_strategic_merge_on_a_custom_resource_is_a_415() -> None:
    with pytest.raises(ApiError) as caught:
        apply_patch(RESOURCES["tkeserviceconfigs"], {"spec": {}}, {"spec": {"a": 1}}, STRATEGIC_MERGE_PATCH)
    assert caught.value.code == 415
    assert caught.value.reason == "UnsupportedMediaType"
    assert "application/merge-patch+json" in caught.value.status["message"]
    assert "strategic" not in caught.value.status["message"]


def test_unknown_patch_media_type_is_a_415() -> None:
    with pytest.raises(ApiError) as caught:
        apply_patch(PODS, pod(), {"a": 1}, "text/plain")
    assert caught.value.code == 415
    with pytest.raises(ApiError) as apply:
        apply_patch(PODS, pod(), {"a": 1}, "application/apply-patch+yaml")
    assert apply.value.code == 415
