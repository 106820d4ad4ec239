"""Delayed work through the store's schedule: a drain re-check is taken by a timer when due, and one
whose invocation was lost (SCF retried it into the dead-letter queue) is taken again after the
visibility timeout and still deregisters the Pod."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import load_event
from tests.functional.steps.conftest import Env, handler, pod, service


@pytest.fixture
def timers(env: Env) -> Iterator[Env]:
    for function in ("reconcile", "health"):
        handler(function).shell.use(env.deps)
    yield env
    for function in ("reconcile", "health"):
        handler(function).shell.use(None)


def schedule_timer() -> dict[str, str]:
    return {**load_event("timer"), "TriggerName": "schedule-every-10s", "Message": "schedule"}


def draining_pod(env: Env) -> str:
    env.cluster.put_service(service())
    env.cluster.put_pod(pod("web-1", "10.0.0.1"))
    env.cluster.put_pod(pod("web-2", "10.0.0.2"))
    assert env.invoke("service", "service_web")["ok"]
    env.drain()
    lb_id = env.lb_id()
    env.cluster.update_pod("default", "web-1", deletion_timestamp="2023-11-14T22:20:00Z")
    assert env.invoke("unbind", "unbind_pod")["result"]["clbs"][0]["drained"]
    return lb_id


def test_the_schedule_timer_runs_a_drain_recheck_when_due(timers: Env) -> None:
    env = timers
    lb_id = draining_pod(env)
    assert env.invoke("reconcile", schedule_timer()) == {"due": 0, "dispatched": []}  # not due yet
    env.clock.advance(30)
    drained = env.invoke("reconcile", schedule_timer())
    assert drained["due"] == 1 and [d["step"] for d in drained["dispatched"]] == ["unbind"]
    env.drain()
    assert env.targets(lb_id) == {("10.0.0.2", 8080, 10)}
    assert env.deps.store.schedule_list() == []


def test_a_recheck_lost_to_the_dead_letter_queue_is_still_done_by_the_timer(timers: Env) -> None:
    env = timers
    lb_id = draining_pod(env)
    env.clock.advance(30)
    assert env.invoke("health", load_event("timer"))["schedule"]["due"] == 1  # the health poll drains too
    [(function, lost)] = env.queue.queue
    assert function == "unbind" and lost["scheduled"]
    env.queue.queue.clear()  # every SCF attempt failed: the invocation went to the dead letters
    assert ("10.0.0.1", 8080, 0) in env.targets(lb_id)

    env.clock.advance(env.deps.settings.schedule_visibility_s - 1)
    assert env.invoke("reconcile", schedule_timer())["due"] == 0  # still claimed by the lost invocation
    env.clock.advance(1)
    again = env.invoke("reconcile", schedule_timer())
    assert again["due"] == 1
    [(_, retried)] = env.queue.queue
    assert retried["scheduled"][0]["key"] == lost["scheduled"][0]["key"]
    assert retried["scheduled"][0]["claim"] != lost["scheduled"][0]["claim"]
    env.drain()
    assert env.targets(lb_id) == {("10.0.0.2", 8080, 10)}
    assert env.deps.store.list_bindings(pod_uid="uid-web-1") == []
    assert env.deps.store.schedule_list() == []
    # the lost invocation, redelivered late after all, finds nothing to do and completes nothing
    env.invoke("unbind", lost)
    assert env.targets(lb_id) == {("10.0.0.2", 8080, 10)}


def test_dry_run_shows_the_schedule_action_and_schedules_nothing(env: Env) -> None:
    from shared.domain.models import StepRequest
    from shared.steps import run_step

    env.cluster.put_service(service())
    env.cluster.put_pod(pod("web-1", "10.0.0.1"))
    assert env.invoke("service", "service_web")["ok"]
    env.drain()
    env.cluster.update_pod("default", "web-1", deletion_timestamp="2023-11-14T22:20:00Z")
    plan = run_step(env.deps, StepRequest.model_validate(load_event("unbind_pod")), dry_run=True)
    actions = [a["action"] for a in plan["actions"]]
    assert "drain_targets" in actions and "schedule" in actions
    [scheduled] = [a for a in plan["actions"] if a["action"] == "schedule"]
    assert scheduled["function"] == "unbind" and scheduled["due_at"] == env.clock.now() + 30
    assert env.deps.store.schedule_list() == []
    assert env.targets(env.lb_id()) == {("10.0.0.1", 8080, 10)}
