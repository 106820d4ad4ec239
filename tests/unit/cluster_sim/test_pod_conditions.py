"""The kubelet's Ready computation and availability."""

from __future__ import annotations

from emulators.cluster.pod_conditions import (
    containers_ready_condition,
    kubelet_conditions,
    merge_conditions,
    pod_is_available,
    ready_condition,
    seconds_until_available,
)
from emulators.cluster.simclock import format_time

GATE = "cloud.tencent.com/load-balancer-backendgroup-ready"
SPEC = {"containers": [{"name": "web"}, {"name": "log"}], "readinessGates": [{"conditionType": GATE}]}
READY = [{"name": "web", "ready": True}, {"name": "log", "ready": True}]
T0 = 1_700_000_000.0


def test_no_container_statuses_is_unknown() -> None:
    assert containers_ready_condition(SPEC, None, "Pending") == {
        "type": "ContainersReady",
        "status": "False",
        "reason": "UnknownContainerStatuses",
    }


def test_unready_and_unknown_containers_are_listed_like_go_slices() -> None:
    condition = containers_ready_condition(SPEC, [{"name": "web", "ready": False}], "Running")
    assert condition["reason"] == "ContainersNotReady"
    assert condition["message"] == "containers with unknown status: [log], containers with unready status: [web]"


def test_restartable_init_container_counts_and_plain_init_container_does_not() -> None:
    spec = {
        "initContainers": [{"name": "sidecar", "restartPolicy": "Always"}, {"name": "setup"}],
        "containers": [{"name": "web"}],
    }
    statuses = [{"name": "web", "ready": True}, {"name": "sidecar", "ready": False}]
    assert containers_ready_condition(spec, statuses, "Running")["message"] == (
        "containers with unready status: [sidecar]"
    )
    statuses[1]["ready"] = True
    assert containers_ready_condition(spec, statuses, "Running")["status"] == "True"


def test_terminal_phases() -> None:
    assert containers_ready_condition(SPEC, READY, "Succeeded")["reason"] == "PodCompleted"
    assert containers_ready_condition(SPEC, READY, "Failed")["reason"] == "PodFailed"


def test_ready_copies_containers_ready_when_containers_are_not_ready() -> None:
    condition = ready_condition(SPEC, [], [{"name": "web", "ready": False}], "Running")
    assert condition["type"] == "Ready"
    assert condition["reason"] == "ContainersNotReady"
    assert condition["message"].startswith("containers with unknown status: [log]")


def test_missing_gate_condition_is_not_ready_with_the_kubelet_message() -> None:
    assert ready_condition(SPEC, [], READY, "Running") == {
        "type": "Ready",
        "status": "False",
        "reason": "ReadinessGatesNotReady",
        "message": f'corresponding condition of pod readiness gate "{GATE}" does not exist.',
    }


def test_gate_false_or_unknown_is_not_ready_and_messages_join() -> None:
    spec = {**SPEC, "readinessGates": [{"conditionType": GATE}, {"conditionType": "b"}]}
    conditions = [{"type": GATE, "status": "Unknown"}]
    condition = ready_condition(spec, conditions, READY, "Running")
    assert condition["message"] == (
        f'the status of pod readiness gate "{GATE}" is not "True", but Unknown, '
        'corresponding condition of pod readiness gate "b" does not exist.'
    )


def test_gate_true_makes_ready_true() -> None:
    assert ready_condition(SPEC, [{"type": GATE, "status": "True"}], READY, "Running") == {
        "type": "Ready",
        "status": "True",
    }


def test_merge_keeps_foreign_conditions_and_moves_transition_time_only_on_flip() -> None:
    gate = {"type": GATE, "status": "False", "lastTransitionTime": "2020-01-01T00:00:00Z", "reason": "X"}
    first = merge_conditions([gate], kubelet_conditions(SPEC, [gate], READY, "Running", sandbox_ready=True), T0)
    assert first[0] == gate
    by_type = {c["type"]: c for c in first}
    assert by_type["Ready"]["reason"] == "ReadinessGatesNotReady"
    assert by_type["Ready"]["lastTransitionTime"] == format_time(T0)
    assert by_type["ContainersReady"]["status"] == "True"

    # Same statuses later: nothing moves (the kubelet would not write at all).
    again = merge_conditions(first, kubelet_conditions(SPEC, first, READY, "Running", sandbox_ready=True), T0 + 60)
    assert again == first

    # The gate flips: Ready flips and only Ready's lastTransitionTime moves.
    flipped = [{**c, "status": "True"} if c["type"] == GATE else c for c in again]
    after = merge_conditions(flipped, kubelet_conditions(SPEC, flipped, READY, "Running", sandbox_ready=True), T0 + 120)
    after_by_type = {c["type"]: c for c in after}
    assert after_by_type["Ready"] == {
        "type": "Ready",
        "status": "True",
        "lastProbeTime": None,
        "lastTransitionTime": format_time(T0 + 120),
    }
    assert after_by_type["ContainersReady"]["lastTransitionTime"] == format_time(T0)
    assert [c["type"] for c in after] == [c["type"] for c in first]


def test_availability_counts_from_the_ready_flip() -> None:
    pod = {"status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": format_time(T0)}]}}
    assert pod_is_available(pod, 0, T0)
    assert not pod_is_available(pod, 10, T0 + 10)  # strictly after lastTransitionTime + minReadySeconds
    assert pod_is_available(pod, 10, T0 + 10.5)
    assert seconds_until_available(pod, 10, T0 + 4) == 6
    assert seconds_until_available(pod, 0, T0) is None
    not_ready = {"status": {"conditions": [{"type": "Ready", "status": "False"}]}}
    assert not pod_is_available(not_ready, 0, T0)
    assert seconds_until_available(not_ready, 5, T0) is None
