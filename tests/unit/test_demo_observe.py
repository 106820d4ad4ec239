"""The demo's Pod view is read from the API's JSON as served (no typed client models)."""

from __future__ import annotations

from typing import Any

from demo.observe import PodView, pod_view
from shared.domain.models import GATE_CONDITION_TYPE


def served_pod(*, gate: str | None, ready: str, deleting: bool = False) -> dict[str, Any]:
    conditions = [{"type": "Ready", "status": ready}]
    spec: dict[str, Any] = {"containers": [{"name": "web", "env": [{"name": "VERSION", "value": "v2"}]}]}
    if gate is not None:
        spec["readinessGates"] = [{"conditionType": GATE_CONDITION_TYPE}]
        conditions.append({"type": GATE_CONDITION_TYPE, "status": gate})
    metadata: dict[str, Any] = {"name": "web-1"}
    if deleting:
        metadata["deletionTimestamp"] = "2026-12-02T18:00:00Z"
    return {
        "metadata": metadata,
        "spec": spec,
        "status": {"phase": "Running", "podIP": "10.0.0.7", "conditions": conditions},
    }


def test_a_gated_ready_pod_reads_with_its_version_ip_and_gate() -> None:
    assert pod_view(served_pod(gate="True", ready="True")) == PodView(
        "web-1", "Running", True, True, "v2", "10.0.0.7", terminating=False
    )


def test_a_pod_whose_gate_is_pending_is_not_ready_and_its_gate_false() -> None:
    view = pod_view(served_pod(gate="False", ready="False", deleting=True))
    assert (view.ready, view.gate, view.terminating) == (False, False, True)


def test_a_pod_without_our_gate_has_no_gate_and_an_unscheduled_one_reads_as_pending() -> None:
    assert pod_view(served_pod(gate=None, ready="True")).gate is None
    bare = pod_view({"metadata": {"name": "web-2"}, "spec": {"containers": [{"name": "web"}]}})
    assert (bare.phase, bare.ready, bare.version, bare.ip) == ("Pending", False, "?", "")
