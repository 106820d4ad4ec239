"""A failed CLB async task is retried (SCF retries the step), and the drain or registration completes."""

from __future__ import annotations

import pytest

from shared.domain.errors import RetryableError
from tests.functional.steps.conftest import Env, pod
from tests.functional.steps.test_bind_flow import first_bind


def test_a_failed_weight_task_is_retryable_and_the_drain_completes_on_retry(env: Env) -> None:
    lb_id = first_bind(env, ("web-1", "10.0.0.1"), ("web-2", "10.0.0.2"))
    env.cluster.update_pod("default", "web-1", deletion_timestamp="2023-11-14T22:20:00Z")
    env.clb.set_fault({"action": "BatchModifyTargetWeight", "fail_task": True, "count": 1})
    with pytest.raises(RetryableError) as failed:
        env.invoke("unbind", "unbind_pod")
    assert "BatchModifyTargetWeight" in failed.value.message and "task" in failed.value.message
    assert failed.value.code == "TaskFailed"
    assert ("10.0.0.1", 8080, 10) in env.targets(lb_id)  # not drained yet
    retried = env.invoke("unbind", "unbind_pod")  # what SCF's async retry does
    assert retried["ok"], retried
    assert ("10.0.0.1", 8080, 0) in env.targets(lb_id)


def test_a_failed_listener_task_is_retryable_and_the_pods_are_still_registered(env: Env) -> None:
    """The registration path: the service step's CreateListener task fails once; SCF's retry of the step
    creates the listener and the Pods are bound."""
    from tests.functional.steps.conftest import service

    env.cluster.put_service(service())
    env.cluster.put_pod(pod("web-1", "10.0.0.1"))
    env.clb.set_fault({"action": "CreateListener", "fail_task": True, "count": 1})
    with pytest.raises(RetryableError, match="CreateListener") as failed:
        env.invoke("service", "service_web")
    assert failed.value.code == "TaskFailed"
    retried = env.invoke("service", "service_web")
    assert retried["ok"], retried
    env.drain()
    assert env.targets(env.lb_id()) == {("10.0.0.1", 8080, 10)}
