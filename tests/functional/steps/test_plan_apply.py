"""Observe -> plan -> apply through the real bind/unbind steps: a dry run returns the typed plan and changes
nothing; the real run applies exactly that plan (the same actions, in the same order, the same targets)."""

from __future__ import annotations

from typing import Any

from shared.domain.batch import BatchPlan
from shared.domain.models import StepRequest
from shared.steps import run_step
from tests.functional.steps.conftest import Env, pod, service


def actions(result: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(a["action"], a.get("targets")) for a in result["actions"]]


def test_the_dry_run_is_the_plan_the_real_run_applies(env: Env) -> None:
    env.cluster.put_service(service())
    assert env.invoke("service", "service_web")["ok"]
    env.drain()
    lb_id = env.lb_id()
    for name, ip in (("web-1", "10.0.0.1"), ("web-2", "10.0.0.2")):
        env.cluster.put_pod(pod(name, ip))
    request = StepRequest.model_validate({"step": "bind", "services": [{"namespace": "default", "name": "web"}]})
    writes = env.writes()

    dry = run_step(env.deps, request, dry_run=True)
    [clb] = dry["result"]["clbs"]
    plan = BatchPlan.model_validate(clb["plan"])
    assert [a.kind for a in plan.actions][:3] == ["record_binding", "record_binding", "clb"]
    assert all(getattr(a, "reason", "x") for a in plan.actions)
    assert env.writes() == writes and env.targets(lb_id) == set() and env.deps.store.list_bindings() == []
    assert env.queue.queue == [] and env.deps.store.schedule_list() == []

    real = run_step(env.deps, request)
    assert actions(real) == actions(dry)
    assert env.targets(lb_id) == {("10.0.0.1", 8080, 10), ("10.0.0.2", 8080, 10)}
    assert env.writes()["BatchRegisterTargets"] == writes.get("BatchRegisterTargets", 0) + 1
    assert [b.state for b in env.deps.store.list_bindings(lb_id=lb_id)] == ["registered", "registered"]


def test_a_dry_run_unbind_plans_the_drain_and_its_schedule_without_either(env: Env) -> None:
    env.cluster.put_service(service())
    env.cluster.put_pod(pod("web-1", "10.0.0.1"))
    assert env.invoke("service", "service_web")["ok"]
    env.drain()
    lb_id = env.lb_id()
    env.cluster.update_pod("default", "web-1", deletion_timestamp="2023-11-14T22:20:00Z")
    request = StepRequest.model_validate({"step": "unbind", "pod_uids": ["uid-web-1"]})
    dry = run_step(env.deps, request, dry_run=True)
    plan = BatchPlan.model_validate(dry["result"]["clbs"][0]["plan"])
    clb = [a for a in plan.actions if a.kind == "clb"]
    assert [(a.action, [(t.ip, t.weight) for t in a.targets]) for a in clb] == [("drain_targets", [("10.0.0.1", 0)])]
    assert env.targets(lb_id) == {("10.0.0.1", 8080, 10)} and env.deps.store.schedule_list() == []
    real = run_step(env.deps, request)
    assert actions(real) == actions(dry)
    assert env.targets(lb_id) == {("10.0.0.1", 8080, 0)}
    assert [i.key for i in env.deps.store.schedule_list()] == [f"unbind:{lb_id}:uid:uid-web-1"]
