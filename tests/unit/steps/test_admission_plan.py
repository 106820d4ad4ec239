"""The admission planner is pure: a review, the namespace's selectors and the protection in, a typed plan out
(each Pod patch with its reason, the warnings and notices, the refusal of a gate, a cold index refresh)."""

from __future__ import annotations

import json
from typing import Any

from shared.domain.admission import (
    AdmissionPlan,
    AdmissionSnapshot,
    Notice,
    Protection,
    RefreshSelectorIndex,
    RefuseGate,
    Warn,
    parse_review,
    plan_admission,
)
from shared.domain.models import SelectorEntry
from shared.domain.termination import PROTECTION_ANNOTATION, Endpoint, PatchPod, ProtectionOptions

PROTECTION = Protection(
    options=ProtectionOptions(
        mode="http", endpoint=Endpoint.parse("https://gw.example/prestop"), drain_budget_s=10, sleep_s=10
    ),
    key=b"k",
    prestop_id="a" * 32,
)
WEB = SelectorEntry(namespace="ns", service="web", selector={"app": "web"})


def review(dry_run: bool = False, **spec: Any) -> Any:
    pod = {
        "metadata": {
            "generateName": "web-",
            "labels": {"app": "web"},
            "ownerReferences": [{"kind": "ReplicaSet", "name": "web-7d4b9c", "controller": True}],
        },
        "spec": {"containers": [{"name": "app"}], **spec},
    }
    body = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {"uid": "r-1", "namespace": "ns", "kind": {"kind": "Pod"}, "object": pod, "dryRun": dry_run},
    }
    return parse_review(json.dumps(body))


def plan(snapshot_review: Any = None, **kw: Any) -> AdmissionPlan:
    values: dict[str, Any] = {"review": snapshot_review or review(), "selectors": [WEB], "protection": PROTECTION}
    return plan_admission(AdmissionSnapshot(**{**values, **kw}))


def test_a_selected_pod_gets_the_gate_then_the_drain_wait_hook_then_its_prestop_id_each_with_a_reason() -> None:
    planned = plan()
    patches = [action for action in planned.actions if isinstance(action, PatchPod)]
    assert [p.adds for p in patches] == ["readiness_gate", "prestop_hook", "prestop_id_label"]
    assert all(p.reason for p in patches)
    assert "selected by ns/web" in patches[0].reason and "container app has no preStop" in patches[1].reason
    assert planned.patch == [p.json_op() for p in patches] and planned.protected == ["app"]
    assert planned.services == ["ns/web"] and planned.warnings == []


def test_an_unselected_pod_gets_nothing() -> None:
    other = plan(selectors=[SelectorEntry(namespace="ns", service="db", selector={"app": "db"})])
    assert other.actions == [] and other.response()["response"] == {"uid": "r-1", "allowed": True}


def test_a_host_network_pod_is_refused_the_gate_but_admitted_with_a_warning() -> None:
    planned = plan(review(hostNetwork=True))
    (refusal,) = planned.actions
    assert isinstance(refusal, RefuseGate) and "hostNetwork" in refusal.message
    response = planned.response()["response"]
    assert response["allowed"] and "patch" not in response and response["warnings"] == [refusal.message]


def test_a_short_grace_period_is_a_notice_on_the_first_selecting_service_and_a_warning() -> None:
    planned = plan(review(terminationGracePeriodSeconds=5))
    (notice,) = planned.notices
    assert (notice.notice, notice.workload) == ("GracePeriodTooShort", "ReplicaSet web-7d4b9c")
    assert notice.regarding is not None and (notice.regarding.kind, notice.regarding.name) == ("Service", "web")
    assert planned.warnings == [f"clb-direct: {notice.message}"]
    # a dry-run review says the same but asks for no Event
    (quiet,) = plan(review(dry_run=True, terminationGracePeriodSeconds=5)).notices
    assert isinstance(quiet, Notice) and quiet.regarding is None


def test_a_bad_protection_annotation_is_warned_about_and_the_default_applies() -> None:
    bogus = WEB.model_copy(update={"annotations": {PROTECTION_ANNOTATION: "x"}})
    planned = plan(selectors=[bogus])
    warns = [action for action in planned.actions if isinstance(action, Warn)]
    assert len(warns) == 1 and PROTECTION_ANNOTATION in warns[0].message
    assert "prestop_hook" in [a.adds for a in planned.actions if isinstance(a, PatchPod)]


def test_a_cold_index_is_refreshed_from_the_live_services_first_and_not_for_a_dry_run() -> None:
    planned = plan(indexed=["gone", "web"])
    refresh = planned.actions[0]
    assert isinstance(refresh, RefreshSelectorIndex)
    assert (refresh.namespace, refresh.entries, refresh.stale) == ("ns", [WEB], ["gone"])
    assert not any(isinstance(a, RefreshSelectorIndex) for a in plan(review(dry_run=True), indexed=["gone"]).actions)
    assert not any(isinstance(a, RefreshSelectorIndex) for a in plan().actions)  # a warm index: nothing to write


def test_without_protection_only_the_gate_is_added() -> None:
    planned = plan(protection=None)
    assert [a.adds for a in planned.actions if isinstance(a, PatchPod)] == ["readiness_gate"]
