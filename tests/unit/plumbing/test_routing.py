from __future__ import annotations

import copy
from typing import Any

import pytest

from shared.domain.errors import InvalidInput
from shared.domain.models import ObjectKey, SelectorEntry, StepRequest
from shared.domain.routing import (
    ObjectChange,
    group_requests,
    is_stale,
    plan_change,
    plan_changes,
    split_request,
)
from shared.normalize import audit_event_id, normalize_audit, normalize_watch
from tests.conftest import load_event

SELECTORS = [SelectorEntry(namespace="shop", service="web", selector={"app": "web"}, lb_id="lb-web00001")]


def items() -> list[dict[str, Any]]:
    return load_event("audit_eventlist")["items"]


def test_generate_name_create_takes_the_name_from_the_response() -> None:
    change = normalize_audit(items()[0])
    assert change is not None
    assert change.name == "web-7d9f-abcde"
    assert change.uid == "uid-web-7d9f-abcde"
    assert change.action == "upsert" and not change.bind_eligible


def test_status_patch_carries_pod_facts() -> None:
    change = normalize_audit(items()[1])
    assert change is not None
    assert (change.pod_ip, change.containers_ready, change.has_gate) == ("127.0.10.5", True, True)
    assert change.resource_version == "105"
    assert change.bind_eligible
    assert change.event_id == audit_event_id("a-status-1", "ResponseComplete")


@pytest.mark.parametrize("index", [2, 4, 5])
def test_reads_failures_and_bindings_are_ignored(index: int) -> None:
    assert normalize_audit(items()[index]) is None


def test_other_stages_and_other_configmaps_are_ignored() -> None:
    event = copy.deepcopy(items()[1])
    event["stage"] = "RequestReceived"
    assert normalize_audit(event) is None
    config = copy.deepcopy(items()[3])
    config["objectRef"] = {"resource": "configmaps", "namespace": "kube-system", "name": "coredns"}
    config.pop("responseObject")
    assert normalize_audit(config) is None
    config["objectRef"]["name"] = "tke-service-controller-config"
    change = normalize_audit(config)
    assert change is not None and change.kind == "ClusterConfig"


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda e: e.pop("auditID"), "auditID"),
        (lambda e: e.update(verb=""), "verb"),
        (lambda e: e.update(objectRef="pods"), "objectRef"),
    ],
)
def test_malformed_events_say_which_field(mutate: Any, reason: str) -> None:
    event = copy.deepcopy(items()[1])
    mutate(event)
    with pytest.raises(InvalidInput, match=reason):
        normalize_audit(event)


def test_non_object_and_nameless_patch_are_malformed() -> None:
    with pytest.raises(InvalidInput, match="JSON object"):
        normalize_audit(["not", "an", "event"])
    event = copy.deepcopy(items()[1])
    event["objectRef"]["name"] = ""
    event.pop("responseObject")
    with pytest.raises(InvalidInput, match="no name"):
        normalize_audit(event)


def test_metadata_level_pod_event_plans_a_pod_reconcile() -> None:
    event = copy.deepcopy(items()[1])
    event.pop("responseObject")
    change = normalize_audit(event)
    assert change is not None and not change.facts_known
    [request] = plan_change(change, SELECTORS)
    assert request.step == "reconcile" and request.pods == [ObjectKey(namespace="shop", name="web-7d9f-abcde")]


def test_watch_normalisation_and_delete() -> None:
    batch = load_event("relay_batch")
    deleted = batch["items"][2]
    change = normalize_watch(deleted["type"], deleted["resource"], deleted["object"])
    assert change is not None and change.action == "delete" and change.source == "watch"
    with pytest.raises(InvalidInput, match=r"metadata\.name"):
        normalize_watch("ADDED", "pods", {"metadata": {}})


def _change(**kw: Any) -> ObjectChange:
    base: dict[str, Any] = {
        "event_id": "e1",
        "source": "watch",
        "kind": "Pod",
        "action": "upsert",
        "namespace": "shop",
        "name": "p1",
        "uid": "u1",
        "resource_version": "10",
        "facts_known": True,
        "labels": {"app": "web"},
    }
    base.update(kw)
    return ObjectChange(**base)


@pytest.mark.parametrize(
    ("rv", "last", "action", "stale"),
    [
        ("10", None, "upsert", False),
        ("10", "9", "upsert", False),
        ("10", "10", "upsert", False),  # a step read this version: not proof that every step it needs ran
        ("9", "10", "upsert", True),
        ("10", "10", "delete", False),
        ("9", "10", "delete", True),
        ("abc", "10", "upsert", False),
        ("", "10", "upsert", False),
    ],
)
def test_stale(rv: str, last: str | None, action: str, stale: bool) -> None:
    assert is_stale(_change(resource_version=rv, action=action), last) is stale


def test_plan_pod_lifecycle() -> None:
    ready = _change(pod_ip="10.0.0.1", containers_ready=True, has_gate=True)
    [bind] = plan_change(ready, SELECTORS)
    assert (bind.step, bind.lb_id, bind.services) == ("bind", "lb-web00001", [ObjectKey(namespace="shop", name="web")])
    assert bind.pod_uids == ["u1"]
    assert plan_change(_change(), SELECTORS) == []  # no IP yet: nothing to do
    [drain] = plan_change(_change(deleting=True, pod_ip="10.0.0.1"), SELECTORS)
    assert drain.step == "unbind"
    [gone] = plan_change(_change(action="delete"), [])
    assert gone.step == "unbind"
    # Bound once (gate set), now ineligible: unbind decides.
    [unready] = plan_change(_change(pod_ip="10.0.0.1", gate_status="True", has_gate=True), SELECTORS)
    assert unready.step == "unbind"


def test_plan_pod_no_longer_selected_releases_only_gated_pods() -> None:
    assert plan_change(_change(labels={"app": "other"}), SELECTORS) == []
    steps = [r.step for r in plan_change(_change(labels={"app": "other"}, has_gate=True), SELECTORS)]
    assert steps == ["unbind", "flip"]


def test_plan_services_and_config() -> None:
    service = _change(kind="Service", name="web", annotations={"service.kubernetes.io/loadbalance-id": "lb-1"})
    [request] = plan_change(service, [])
    assert (request.step, request.lb_id) == ("service", "lb-1")
    [config] = plan_change(_change(kind="TkeServiceConfig", name="cfg"), [])
    assert config.step == "reconcile" and config.services == [] and config.pods == []


def test_group_requests_merges_per_step_and_clb() -> None:
    changes = [
        _change(event_id=f"e{i}", name=f"p{i}", uid=f"u{i}", pod_ip=f"10.0.0.{i}", containers_ready=True)
        for i in range(3)
    ]
    two_lbs = [*SELECTORS, SelectorEntry(namespace="shop", service="web2", selector={"app": "web"}, lb_id="lb-2")]
    requests = plan_changes(changes, {"shop": two_lbs}, correlation_id="batch-1")
    assert [(r.step, r.lb_id, len(r.pods)) for r in requests] == [("bind", "lb-2", 3), ("bind", "lb-web00001", 3)]
    assert all(r.correlation_id == "batch-1" for r in requests)
    dup = group_requests([requests[0], requests[0]], correlation_id=None)
    assert len(dup) == 1 and len(dup[0].pods) == 3


def test_split_request_keeps_pods_and_uids_together_and_under_limit() -> None:
    pods = [ObjectKey(namespace="shop", name=f"pod-{i:04d}-{'x' * 40}") for i in range(400)]
    request = StepRequest(
        step="bind",
        lb_id="lb-1",
        services=[ObjectKey(namespace="shop", name="web")],
        pods=pods,
        pod_uids=[f"uid-{i:04d}" for i in range(400)],
    )
    parts = split_request(request, max_bytes=8 * 1024)
    assert len(parts) > 1
    assert all(len(p.model_dump_json()) <= 8 * 1024 for p in parts)
    assert [p for part in parts for p in part.pods] == pods
    for part in parts:
        assert part.services == request.services
        assert [int(u.split("-")[1]) for u in part.pod_uids] == [int(p.name.split("-")[1]) for p in part.pods]
    assert split_request(request, max_bytes=10**6) == [request]
    with pytest.raises(InvalidInput, match="even with one object"):
        split_request(StepRequest(step="flip", reason="x" * 500), max_bytes=100)
