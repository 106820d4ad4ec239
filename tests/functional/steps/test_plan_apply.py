"""Observe -> plan -> apply through the real service, bind/unbind and flip steps: a dry run returns the typed
plan and changes nothing; the real run applies exactly that plan (the same actions, in the same order, the same
targets)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.domain.batch import BatchPlan
from shared.domain.errors import ConfigError
from shared.domain.flip_plan import FlipPlan
from shared.domain.models import GATE_READY_REASON, ServicePort, StepRequest
from shared.domain.service_plan import CLB_WRITES, ServicePlan
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


def _service_request() -> StepRequest:
    return StepRequest.model_validate({"step": "service", "services": [{"namespace": "default", "name": "web"}]})


def test_the_service_step_dry_run_is_the_plan_it_applies(env: Env) -> None:
    env.cluster.put_service(service(ports=[ServicePort(port=80, target_port=8080)]))
    assert env.invoke("service", "service_web")["ok"]
    env.drain()
    lb_id = env.lb_id()
    # A port added: one listener to create, nothing else on the CLB.
    env.cluster.put_service(
        env.cluster.services[("default", "web")].model_copy(
            update={"ports": [ServicePort(port=80, target_port=8080), ServicePort(port=443, target_port=8443)]}
        )
    )
    writes = env.writes()
    dry = run_step(env.deps, _service_request(), dry_run=True)
    [result] = dry["result"]["services"]
    plan = ServicePlan.model_validate(result["plan"])
    assert [a.kind for a in plan.actions if isinstance(a, CLB_WRITES)] == ["create_listener"]
    assert all(getattr(a, "reason", "x") for a in plan.actions) and plan.refusal is None
    assert env.writes() == writes and env.queue.queue == []

    real = run_step(env.deps, _service_request())
    assert actions(real) == actions(dry)
    assert sorted(lst.port for lst in env.deps.require_clb().list_listeners(lb_id)) == [80, 443]
    assert env.writes()["CreateListener"] == writes["CreateListener"] + 1


def test_a_dry_run_teardown_plans_the_deletion_and_release_without_either(env: Env) -> None:
    env.cluster.put_service(service())
    env.cluster.put_pod(pod("web-1", "10.0.0.1"))
    assert env.invoke("service", "service_web")["ok"]
    env.drain()
    lb_id = env.lb_id()
    env.cluster.delete_service("default", "web")
    dry = run_step(env.deps, _service_request(), dry_run=True)
    plan = ServicePlan.model_validate(dry["result"]["services"][0]["plan"])
    kinds = [a.kind for a in plan.actions]
    assert kinds[0] == "delete_load_balancer" and "release_pods" in kinds and kinds[-1] == "report_removed"
    assert env.deps.require_clb().describe_load_balancer(lb_id) is not None and env.deps.store.list_bindings()
    real = run_step(env.deps, _service_request())
    assert actions(real) == actions(dry)
    assert env.deps.require_clb().describe_load_balancer(lb_id) is None
    assert real["result"]["services"][0]["released_pods"] == 1


def test_a_refused_plan_applies_its_warning_and_fails(env: Env) -> None:
    env.cluster.put_service(service(**{"service.cloud.tencent.com/tke-service-config": "missing"}))
    with pytest.raises(ConfigError, match="does not exist"):
        run_step(env.deps, _service_request())
    assert env.writes() == {} and not env.cluster.services[("default", "web")].finalizers
    assert [reason for _, _, reason, _ in env.cluster.events] == ["InvalidTkeServiceConfig"]


def test_the_flip_dry_run_is_the_plan_it_applies(env: Env) -> None:
    env.cluster.put_service(service())
    for name, ip in (("web-1", "10.0.0.1"), ("web-2", "10.0.0.2")):
        env.cluster.put_pod(pod(name, ip))
    assert env.invoke("service", "service_web")["ok"]
    env.drain()
    env.set_health(env.lb_id(), "10.0.0.1", 8080)
    request = StepRequest.model_validate({"step": "flip", "services": [{"namespace": "default", "name": "web"}]})
    writes_before = env.cluster.condition_writes

    dry = run_step(env.deps, request, dry_run=True)
    plan = FlipPlan.model_validate(dry["result"]["plan"])
    # web-2 is still waiting with the same message: only web-1's gate changes, so only it is written.
    assert [(w.pod, [a.kind for a in w.actions]) for w in plan.writes] == [
        ("default/web-1", ["patch_gate", "emit_event", "record_gate", "record_timeline"])
    ]
    assert all(a.reason for w in plan.writes for a in w.actions)
    assert env.cluster.condition_writes == writes_before and env.gate("web-1")[0] == "False"  # type: ignore[index]

    real = run_step(env.deps, request)
    assert actions(real) == actions(dry)
    assert env.cluster.condition_writes == writes_before + 1
    assert env.gate("web-1")[:2] == ("True", GATE_READY_REASON)  # type: ignore[index]
    assert real["result"]["changed"] == 1 and "plan" not in real["result"]
