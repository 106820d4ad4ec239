"""A CLB task that keeps failing: the step is retried with SCF's async semantics and dead-lettered only
after the retries, with the action and task id in the letter; one that fails once is completed."""

# ruff: noqa: F811  (the step harness fixtures are imported and requested by name)

from __future__ import annotations

from emulators.runtime.invoke_queue import AsyncInvokeQueue
from tests.functional.steps.conftest import Env, env, settings_overrides  # noqa: F401
from tests.functional.steps.test_bind_flow import first_bind
from tests.support.polling import eventually


def _queue(env: Env) -> AsyncInvokeQueue:
    queue = AsyncInvokeQueue(lambda function, payload, _rid: env.invoke(function, payload), workers=1)
    queue.retry_delay_s = 0.05
    return queue


def test_a_task_that_keeps_failing_is_dead_lettered_after_the_retries(env: Env) -> None:
    lb_id = first_bind(env, ("web-1", "10.0.0.1"))
    env.cluster.update_pod("default", "web-1", deletion_timestamp="2023-11-14T22:20:00Z")
    env.clb.set_fault({"action": "BatchModifyTargetWeight", "fail_task": True})
    queue = _queue(env)
    queue.start()
    try:
        queue.submit("unbind", _unbind())
        eventually(lambda: len(queue.dead_letters) == 1, "the unbind is dead-lettered")
    finally:
        queue.stop()
    [letter] = queue.dead_letters
    assert letter["attempts"] == 3 and queue.stats.failed_attempts == 3
    assert "BatchModifyTargetWeight" in letter["error"] and "task" in letter["error"]
    assert ("10.0.0.1", 8080, 10) in env.targets(lb_id)  # reconcile drains it once the CLB recovers


def test_a_task_that_fails_once_is_retried_and_the_drain_completes(env: Env) -> None:
    lb_id = first_bind(env, ("web-1", "10.0.0.1"))
    env.cluster.update_pod("default", "web-1", deletion_timestamp="2023-11-14T22:20:00Z")
    env.clb.set_fault({"action": "BatchModifyTargetWeight", "fail_task": True, "count": 1})
    queue = _queue(env)
    queue.start()
    try:
        queue.submit("unbind", _unbind())
        eventually(lambda: queue.stats.succeeded == 1, "the retried unbind succeeds")
    finally:
        queue.stop()
    assert queue.dead_letters == [] and queue.stats.failed_attempts == 1
    assert ("10.0.0.1", 8080, 0) in env.targets(lb_id)


def _unbind() -> dict[str, object]:
    from tests.conftest import load_event

    event = load_event("unbind_pod")
    assert isinstance(event, dict)
    return event
