"""Rolling-update arithmetic and Deployment status rules."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from emulators.cluster.rolling import (
    RsCounts,
    deadline_exceeded,
    max_unavailable,
    new_rs_target,
    pod_template_hash,
    replica_sets_to_clean_up,
    resolve_fenceposts,
    rolling_update_step,
    rollout_status,
    scaled_value,
)
from emulators.cluster.simclock import format_time

T0 = 1_700_000_000.0


@pytest.mark.parametrize(
    ("surge", "unavailable", "replicas", "expected"),
    [
        ("25%", "25%", 4, (1, 1)),
        ("25%", "25%", 3, (1, 0)),  # surge rounds up, unavailable rounds down
        ("25%", "25%", 1, (1, 0)),
        (0, 0, 5, (0, 1)),  # both zero: unavailable becomes 1
        ("0%", "0%", 5, (0, 1)),
        (2, "50%", 5, (2, 2)),
        (None, None, 3, (0, 1)),
    ],
)
def test_resolve_fenceposts(surge: Any, unavailable: Any, replicas: int, expected: tuple[int, int]) -> None:
    assert resolve_fenceposts(surge, unavailable, replicas) == expected


def test_max_unavailable_is_capped_and_zero_without_replicas() -> None:
    assert max_unavailable(0, 5, 3) == 3
    assert max_unavailable("25%", "25%", 0) == 0


def test_bad_int_or_string_is_refused_with_the_value() -> None:
    with pytest.raises(ValueError, match="'abc'"):
        scaled_value("abc", 4, round_up=True)


def test_new_rs_target() -> None:
    assert new_rs_target(3, 1, 3, 0) == 1  # room for one surge Pod
    assert new_rs_target(3, 1, 4, 1) == 1  # at R + surge: wait
    assert new_rs_target(3, 5, 3, 0) == 3  # never above R
    assert new_rs_target(3, 1, 3, 5) == 3  # scaled down to R
    assert new_rs_target(3, 1, 0, 0) == 3  # fresh Deployment


def _apply(new: RsCounts, old: RsCounts, step: dict[str, int]) -> tuple[RsCounts, RsCounts]:
    """Apply one scale step; old Pods removed are available ones, new Pods start gated (unavailable)."""
    if new.name in step:
        new = replace(new, replicas=step[new.name])
    if old.name in step:
        old = replace(old, replicas=step[old.name], available=min(old.available, step[old.name]))
    return new, old


def test_worked_example_gate_paces_the_rollout() -> None:
    """§6.4: R=3, maxSurge=1, maxUnavailable=0: each gate flip allows exactly one more swap."""
    new, old = RsCounts("web-new", 0, 0, created=2.0), RsCounts("web-old", 3, 3, created=1.0)
    history = []
    for _flip in range(3):
        step = rolling_update_step(3, 1, 0, new, [old])
        assert step == {"web-new": new.replicas + 1}
        new, old = _apply(new, old, step)
        # Containers ready but gate False: nothing moves however often the controller syncs.
        assert rolling_update_step(3, 1, 0, new, [old]) == {}
        history.append((new.replicas + old.replicas, new.available + old.available))
        new = replace(new, available=new.available + 1)  # the binder sets the gate: Ready -> available
        step = rolling_update_step(3, 1, 0, new, [old])
        assert step == {"web-old": old.replicas - 1}
        new, old = _apply(new, old, step)
    assert (new, old) == (RsCounts("web-new", 3, 3, 2.0), RsCounts("web-old", 0, 0, 1.0))
    assert history == [(4, 3), (4, 3), (4, 3)]  # never above R + surge, never below R available
    assert rolling_update_step(3, 1, 0, new, [old]) == {}


def test_worked_example_with_max_unavailable_one_removes_an_old_pod_at_once() -> None:
    new, old = RsCounts("n", 0, 0, 2.0), RsCounts("o", 3, 3, 1.0)
    new, old = _apply(new, old, rolling_update_step(3, 1, 1, new, [old]))
    assert new.replicas == 1
    assert rolling_update_step(3, 1, 1, new, [old]) == {"o": 2}  # available 3 > minAvailable 2, no gate flip


def test_unhealthy_old_replicas_are_cleaned_up_first_oldest_rs_first() -> None:
    new = RsCounts("n", 2, 2, 3.0)
    older, old = RsCounts("a", 1, 0, 1.0), RsCounts("b", 2, 2, 2.0)
    # all=5, minAvailable=4 (R=4, unavail 0 with surge 1), newUnavailable=0 -> maxScaledDown=1:
    # the unavailable Pod of the oldest RS goes first; availability (4) is not above 4 so nothing else.
    assert rolling_update_step(4, 1, 0, new, [older, old]) == {"a": 0}


def test_scale_down_spreads_over_old_rs_oldest_first() -> None:
    new = RsCounts("n", 4, 4, 3.0)
    assert rolling_update_step(4, 1, 0, new, [RsCounts("a", 1, 1, 1.0), RsCounts("b", 1, 1, 2.0)]) == {
        "a": 0,
        "b": 0,
    }


def test_pod_template_hash_ignores_its_own_label_and_changes_with_the_template() -> None:
    template = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "a:1"}]}}
    labelled = {**template, "metadata": {"labels": {"app": "web", "pod-template-hash": "zzz"}}}
    changed = {**template, "spec": {"containers": [{"name": "web", "image": "a:2"}]}}
    value = pod_template_hash(template)
    assert value == pod_template_hash(labelled)
    assert value != pod_template_hash(changed)
    assert value != pod_template_hash(template, collision_count=1)
    assert set(value) <= set("bcdfghjklmnpqrstvwxz2456789")


def _rs(name: str, revision: int, replicas: int = 0, observed: int = 1) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "generation": 1,
            "annotations": {"deployment.kubernetes.io/revision": str(revision)},
        },
        "spec": {"replicas": replicas},
        "status": {"replicas": replicas, "observedGeneration": observed},
    }


def test_revision_history_cleanup_deletes_oldest_idle_only() -> None:
    olds = [_rs("r3", 3), _rs("r1", 1), _rs("r2", 2, replicas=1), _rs("r4", 4, observed=0)]
    assert replica_sets_to_clean_up(olds, 2) == ["r1"]  # r2 is next by revision but still has Pods
    assert replica_sets_to_clean_up(olds, 0) == ["r1", "r3"]  # r4's status has not seen its generation
    assert replica_sets_to_clean_up(olds, 4) == []


def _deployment(status: dict[str, Any], generation: int = 2) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "generation": generation},
        "spec": {
            "replicas": 3,
            "progressDeadlineSeconds": 600,
            "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        },
        "status": status,
    }


def _rs_status(name: str, spec: int, replicas: int, ready: int, available: int) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"replicas": spec},
        "status": {"replicas": replicas, "readyReplicas": ready, "availableReplicas": available},
    }


def _conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def test_status_counts_and_a_stalled_rollout_times_out_then_recovers() -> None:
    new, old = _rs_status("web-new", 1, 1, 0, 0), _rs_status("web-old", 3, 3, 3, 3)
    created = {
        "type": "Progressing",
        "status": "True",
        "reason": "NewReplicaSetCreated",
        "lastUpdateTime": format_time(T0),
        "lastTransitionTime": format_time(T0),
        "message": 'Created new replica set "web-new"',
    }
    start = {"replicas": 3, "updatedReplicas": 0, "readyReplicas": 3, "availableReplicas": 3, "conditions": [created]}
    status = rollout_status(_deployment(start), new, [new, old], T0 + 1)
    assert {k: status[k] for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")} == {
        "replicas": 4,
        "updatedReplicas": 1,
        "readyReplicas": 3,
        "availableReplicas": 3,
    }
    assert status["unavailableReplicas"] == 1
    assert status["observedGeneration"] == 2
    conditions = _conditions(status)
    assert conditions["Available"]["reason"] == "MinimumReplicasAvailable"
    assert conditions["Progressing"]["reason"] == "ReplicaSetUpdated"  # updatedReplicas grew
    progressed_at = conditions["Progressing"]["lastUpdateTime"]
    assert conditions["Progressing"]["lastTransitionTime"] == format_time(T0)

    # No progress for 600 s: still fine at the deadline, timed out just after.
    assert rollout_status(_deployment(status), new, [new, old], T0 + 600) == status
    assert not deadline_exceeded(status, 600, T0 + 600)
    stalled = rollout_status(_deployment(status), new, [new, old], T0 + 602)
    assert _conditions(stalled)["Progressing"] | {"lastUpdateTime": "x", "lastTransitionTime": "x"} == {
        "type": "Progressing",
        "status": "False",
        "reason": "ProgressDeadlineExceeded",
        "message": 'ReplicaSet "web-new" has timed out progressing.',
        "lastUpdateTime": "x",
        "lastTransitionTime": "x",
    }
    assert progressed_at == format_time(T0 + 1)

    # The gate finally flips: progress again, and at the end the rollout is complete.
    ready_new = _rs_status("web-new", 1, 1, 1, 1)
    resumed = rollout_status(_deployment(stalled), ready_new, [ready_new, old], T0 + 700)
    assert _conditions(resumed)["Progressing"]["reason"] == "ReplicaSetUpdated"
    assert _conditions(resumed)["Progressing"]["status"] == "True"
    done_new, done_old = _rs_status("web-new", 3, 3, 3, 3), _rs_status("web-old", 0, 0, 0, 0)
    done = rollout_status(_deployment(resumed), done_new, [done_new, done_old], T0 + 800)
    assert _conditions(done)["Progressing"]["reason"] == "NewReplicaSetAvailable"
    assert _conditions(done)["Progressing"]["message"] == 'ReplicaSet "web-new" has successfully progressed.'


def test_available_condition_false_below_minimum() -> None:
    new, old = _rs_status("web-new", 1, 1, 0, 0), _rs_status("web-old", 2, 2, 2, 2)
    status = rollout_status(_deployment({}), new, [new, old], T0)
    assert _conditions(status)["Available"] == {
        "type": "Available",
        "status": "False",
        "reason": "MinimumReplicasUnavailable",
        "message": "Deployment does not have minimum availability.",
        "lastUpdateTime": format_time(T0),
        "lastTransitionTime": format_time(T0),
    }
