"""Service → bind → flip → unbind end to end against the CLB emulator (real SDK adapter)."""

from __future__ import annotations

from shared.domain.models import GATE_READY_REASON
from shared.keys import gate_key
from tests.conftest import load_event
from tests.functional.steps.conftest import Env, pod, service


def first_bind(env: Env, *names_ips: tuple[str, str]) -> str:
    env.cluster.put_service(service())
    for name, ip in names_ips:
        env.cluster.put_pod(pod(name, ip))
    result = env.invoke("service", "service_web")
    assert result["ok"], result
    env.drain()
    return env.lb_id()


def test_first_bind_registers_pods_and_flips_on_health(env: Env) -> None:
    lb_id = first_bind(env, ("web-1", "10.0.0.1"), ("web-2", "10.0.0.2"))
    svc = env.cluster.services[("default", "web")]
    assert "service.cloud.tencent.com/clb-direct-cleanup" in svc.finalizers
    assert svc.ingress_ips and svc.ingress_ips[0].startswith("127.1.0.")
    assert env.targets(lb_id) == {("10.0.0.1", 8080, 10), ("10.0.0.2", 8080, 10)}
    assert env.counts()["BatchRegisterTargets"] == 1  # both Pods in one batch
    assert [b.state for b in env.deps.store.list_bindings(lb_id=lb_id)] == ["registered", "registered"]
    status, _, message = env.gate("web-1")
    assert status == "False" and "TCP:80" in message and "Unknown" in message
    assert env.deps.store.kv_get(gate_key("uid-web-1"), now=env.clock.now()) == "False"

    env.set_health(lb_id, "10.0.0.1", 8080, "Alive")
    env.set_health(lb_id, "10.0.0.2", 8080, "Dead")
    assert env.invoke("flip", "flip_web")["ok"]
    assert env.gate("web-1")[:2] == ("True", GATE_READY_REASON)
    assert env.gate("web-2")[0] == "False" and "Dead" in env.gate("web-2")[2]
    assert env.deps.store.kv_get(gate_key("uid-web-1"), now=env.clock.now()) == "True"
    assert env.cluster.event_reasons("Pod").count("ReadinessGateReady") == 1
    # flipping again changes nothing and emits no second event
    writes = env.cluster.condition_writes
    env.invoke("flip", "flip_web")
    assert env.cluster.condition_writes == writes
    assert env.cluster.event_reasons("Pod").count("ReadinessGateReady") == 1


def test_scale_up_custom_weight_and_scale_down_with_drain(env: Env) -> None:
    lb_id = first_bind(env, ("web-1", "10.0.0.1"))
    env.cluster.put_pod(pod("web-2", "10.0.0.2", annotations={"service.cloud.tencent.com/custom-weight": "60"}))
    env.cluster.put_pod(pod("web-3", "10.0.0.3", containers_ready=False))
    assert env.invoke("bind", {"step": "bind", "pods": [{"namespace": "default", "name": "web-2"}]})["ok"]
    env.drain()
    assert env.targets(lb_id) == {("10.0.0.1", 8080, 10), ("10.0.0.2", 8080, 60)}

    # scale down: web-1 terminating -> weight 0 first, a delayed re-check is queued
    env.cluster.update_pod("default", "web-1", deletion_timestamp="2023-11-14T22:20:00Z")
    result = env.invoke("unbind", "unbind_pod")
    assert result["ok"] and result["result"]["clbs"][0]["drained"]
    assert ("10.0.0.1", 8080, 0) in env.targets(lb_id)
    assert [b.state for b in env.deps.store.list_bindings(pod_uid="uid-web-1")] == ["draining"]
    [recheck] = env.deps.store.schedule_list()
    assert recheck.key == f"unbind:{lb_id}:uid:uid-web-1" and recheck.due_at == env.clock.now() + 30
    assert [f for f, _ in env.queue.queue if f == "unbind"] == []  # nothing waits in an invocation
    # a duplicate terminating event neither drains twice nor schedules a second re-check
    env.invoke("unbind", {**load_event("unbind_pod"), "correlation_id": "audit-dup"})
    assert env.counts()["BatchModifyTargetWeight"] == 1
    assert [(i.key, i.due_at) for i in env.deps.store.schedule_list()] == [(recheck.key, recheck.due_at)]
    # the drain timeout passes and a timer drains the schedule -> deregistered
    env.drain(delayed=True)
    assert env.deps.store.schedule_list() == []
    assert env.targets(lb_id) == {("10.0.0.2", 8080, 60)}
    assert env.deps.store.list_bindings(pod_uid="uid-web-1") == []
    assert env.deps.store.kv_get(gate_key("uid-web-1"), now=env.clock.now()) is None


def test_pod_gone_is_deregistered_at_once_and_works_from_records(env: Env) -> None:
    lb_id = first_bind(env, ("web-1", "10.0.0.1"), ("web-2", "10.0.0.2"))
    env.cluster.remove_pod("default", "web-1")  # force-deleted: never seen terminating
    result = env.invoke("unbind", "unbind_pod")
    assert result["result"]["clbs"][0]["deregistered"] == ["default/web-1@10.0.0.1:8080/" + _listener(env, lb_id)]
    assert env.targets(lb_id) == {("10.0.0.2", 8080, 10)}
    assert env.counts().get("BatchModifyTargetWeight", 0) == 0  # no pointless drain of a gone Pod


def _listener(env: Env, lb_id: str) -> str:
    return env.deps.require_clb().list_listeners(lb_id)[0].listener_id


def test_rolling_update_replaces_pods(env: Env) -> None:
    lb_id = first_bind(env, ("web-a1", "10.0.0.1"), ("web-a2", "10.0.0.2"))
    for name, ip in (("web-b1", "10.0.1.1"), ("web-b2", "10.0.1.2")):
        env.cluster.put_pod(pod(name, ip, owner="web-rs2"))
    env.invoke("bind", "bind_web")
    env.drain()
    for old in ("web-a1", "web-a2"):
        env.cluster.update_pod("default", old, deletion_timestamp="2023-11-14T22:30:00Z")
    env.invoke("unbind", {"step": "unbind", "pod_uids": ["uid-web-a1", "uid-web-a2"]})
    assert {w for _, _, w in env.targets(lb_id)} == {0, 10}
    for old in ("web-a1", "web-a2"):
        env.cluster.remove_pod("default", old)
    env.drain(delayed=True)
    assert env.targets(lb_id) == {("10.0.1.1", 8080, 10), ("10.0.1.2", 8080, 10)}
    # registration and deregistration each cost one batch call for the whole wave
    assert env.counts()["BatchRegisterTargets"] == 2 and env.counts()["BatchDeregisterTargets"] == 1


def test_pod_that_stops_being_selected_is_drained(env: Env) -> None:
    lb_id = first_bind(env, ("web-1", "10.0.0.1"))
    env.cluster.update_pod("default", "web-1", labels={"app": "debug"})
    env.invoke("bind", "bind_web")  # bind notices the unwanted binding and asks unbind
    env.drain()
    assert env.targets(lb_id) == {("10.0.0.1", 8080, 0)}


def test_duplicate_and_stale_events_cause_no_extra_calls(env: Env) -> None:
    lb_id = first_bind(env, ("web-1", "10.0.0.1"))
    before = env.writes()
    again = env.invoke("bind", "bind_web")  # same correlation id as the first bind: replayed
    assert again["ok"] and env.writes() == before
    env.invoke("bind", {"step": "bind", "services": [{"namespace": "default", "name": "web"}]})
    env.drain()
    assert env.writes() == before  # level-triggered: nothing left to do
    # a stale unbind for a live, ready, selected Pod changes nothing
    result = env.invoke("unbind", {"step": "unbind", "pod_uids": ["uid-web-1"], "reason": "stale"})
    assert result["result"]["clbs"][0]["kept"] and env.writes() == before
    # a stale bind for a Pod object that was replaced (same name, new UID, not ready) binds nothing dead
    env.cluster.put_pod(pod("web-1", "10.0.0.9", uid="uid-web-1-new", containers_ready=False))
    env.invoke("bind", "bind_pod")
    env.drain()
    assert ("10.0.0.9", 8080, 10) not in env.targets(lb_id)


def test_bad_input_is_a_clear_permanent_error_and_changes_nothing(env: Env) -> None:
    env.cluster.put_service(service())
    result = env.invoke("bind", "step_bad_field")
    assert result["ok"] is False and result["error"] == "InvalidInput" and "services.0.name" in result["message"]
    result = env.invoke("flip", "service_web")
    assert result["ok"] is False and "sent to function 'flip'" in result["message"]
    assert env.counts() == {} and env.queue.queue == []


def test_dry_run_plans_without_side_effects(env: Env) -> None:
    env.cluster.put_service(service())
    env.cluster.put_pod(pod("web-1", "10.0.0.1"))
    from shared.domain.models import ObjectKey, StepRequest
    from shared.steps import run_step

    planned = run_step(env.deps, StepRequest(step="service", services=[ObjectKey.parse("default/web")]), dry_run=True)
    # The plan names the CLB it creates `<new>`, and shows the Event its creation will emit.
    assert [a["action"] for a in planned["actions"]][:5] == [
        "add_finalizer",
        "index_selector",  # before the CLB: admission gates Pods created while it is being made
        "create_load_balancer",
        "emit_event",
        "create_listener",
    ]
    assert env.deps.store.list_selectors("default") == []
    [result] = planned["result"]["services"]
    assert result["lb_id"] == "<new>" and result["plan"]["actions"][0]["kind"] == "patch_service"
    assert env.writes() == {} and env.queue.queue == [] and not env.cluster.services[("default", "web")].finalizers
