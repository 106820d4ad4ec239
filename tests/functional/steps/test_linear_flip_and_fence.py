"""Issue 11 items 3-4 end to end: a health change flips only the Pod it concerns (counted writes), and
the gate is a fence: adding a second direct-access Service binds the serving Pods without taking any
of them NotReady, while a Pod created afterwards waits for both Services."""

from __future__ import annotations

import dataclasses
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from cli.main import main
from shared.domain.models import GATE_READY_REASON
from shared.events.health import TargetHealthChanged
from shared.health import on_target_health_changed
from shared.timeline import pod_timeline
from tests.functional.steps.conftest import Env, pod, service

N = 12


def notify(env: Env, lb_id: str, ip: str, status: str = "Alive", *, seq: int = 1) -> dict[str, Any]:
    """What the CLB sends when a target's health changes, for every listener of the CLB."""
    result: dict[str, Any] = {"matched": 0, "dispatched": []}
    for listener in env.deps.require_clb().list_listeners(lb_id):
        env.clb.set_target_health(lb_id, listener.listener_id, ip, 8080, status)
        note = TargetHealthChanged.model_validate(
            {
                "type": "TargetHealthChanged",
                "loadBalancerId": lb_id,
                "listenerId": listener.listener_id,
                "target": {"ip": ip, "port": 8080},
                "oldStatus": "Unknown",
                "newStatus": status,
                "sequence": seq,
            }
        )
        result = on_target_health_changed(env.deps, note)
    return result


def serving(env: Env, count: int = N) -> str:
    env.cluster.put_service(service())
    for i in range(count):
        env.cluster.put_pod(pod(f"web-{i}", f"10.0.0.{i + 1}"))
    assert env.invoke("service", "service_web")["ok"]
    env.drain()
    lb_id = env.lb_id()
    for i in range(count):
        notify(env, lb_id, f"10.0.0.{i + 1}", seq=i)
    env.drain()
    assert all(env.gate(f"web-{i}")[:2] == ("True", GATE_READY_REASON) for i in range(count))  # type: ignore[index]
    return lb_id


def flip_actions(results: list[tuple[str, Any]], action: str) -> list[dict[str, Any]]:
    return [a for f, r in results if f == "flip" for a in r["actions"] if a["action"] == action]


def test_a_health_change_flips_only_the_pod_it_concerns(env: Env) -> None:
    lb_id = serving(env)
    writes_before = env.cluster.condition_writes
    env.cluster.put_pod(pod("web-new", "10.0.1.1"))
    bound = env.invoke("bind", {"step": "bind", "pods": [{"namespace": "default", "name": "web-new"}]})
    assert bound["ok"]
    after_bind = env.drain()
    # The bind's follow-up flip names only the Pod whose gate is not True yet: one condition written (False).
    flips = [r for f, r in after_bind if f == "flip"]
    assert [[o["pod"] for o in r["result"]["pods"]] for r in flips] == [["default/web-new"]]
    assert env.cluster.condition_writes == writes_before + 1
    assert env.gate("web-new")[0] == "False"  # type: ignore[index]

    result = notify(env, lb_id, "10.0.1.1", seq=100)
    assert result["matched"] == 1 and len(result["dispatched"]) == 1
    after_health = env.drain()
    assert env.gate("web-new")[:2] == ("True", GATE_READY_REASON)  # type: ignore[index]
    assert env.cluster.condition_writes == writes_before + 2, "one more write: the changed Pod only"
    assert [a["pod"] for a in flip_actions(after_health, "record_gate")] == ["default/web-new"]
    assert [a["pod"] for a in flip_actions(after_health, "set_pod_condition")] == ["default/web-new"]


def test_a_fenced_pod_costs_no_flip_when_its_health_changes(env: Env) -> None:
    lb_id = serving(env, 3)
    writes_before = env.cluster.condition_writes
    result = notify(env, lb_id, "10.0.0.2", "Dead", seq=50)
    assert result["dispatched"] == [] and result["fenced"] == 1
    assert env.drain() == [] and env.cluster.condition_writes == writes_before
    assert env.gate("web-1")[0] == "True"  # type: ignore[index]
    # an explicit flip of every Pod of the Service (reconcile) leaves the fence alone and records nothing
    flipped = env.invoke("flip", "flip_web")
    assert flipped["ok"] and flipped["result"]["changed"] == 0
    assert [a for a in flipped["actions"] if a["action"] in ("set_pod_condition", "record_gate")] == []


def test_adding_a_second_service_leaves_every_serving_pod_ready(env: Env) -> None:
    serving(env, 4)
    events_before = env.cluster.event_reasons("Pod").count("ReadinessGateNotReady")
    env.cluster.put_service(service("web2"))
    assert env.invoke("service", {"step": "service", "services": [{"namespace": "default", "name": "web2"}]})["ok"]
    env.drain()
    lb2 = env.lb_id(name="web2")
    assert lb2 != env.lb_id()
    assert {ip for ip, _, _ in env.targets(lb2)} == {f"10.0.0.{i + 1}" for i in range(4)}, "serving Pods bound"
    for i in range(4):
        assert env.gate(f"web-{i}")[:2] == ("True", GATE_READY_REASON), f"web-{i} must stay Ready"  # type: ignore[index]
    assert env.cluster.event_reasons("Pod").count("ReadinessGateNotReady") == events_before

    # A Pod created after the second Service waits for both: healthy on the first CLB alone is not enough.
    env.cluster.put_pod(pod("web-late", "10.0.2.1"))
    env.invoke("bind", {"step": "bind", "pods": [{"namespace": "default", "name": "web-late"}]})
    env.drain()
    notify(env, env.lb_id(), "10.0.2.1", seq=200)
    env.drain()
    status, _, message = env.gate("web-late")  # type: ignore[misc]
    assert status == "False" and "default/web2" in message
    notify(env, lb2, "10.0.2.1", seq=201)
    env.drain()
    assert env.gate("web-late")[:2] == ("True", GATE_READY_REASON)  # type: ignore[index]
    stages = [m.stage for m in pod_timeline(env.deps.store, "default/web-late")]
    assert stages[:2] == ["admitted", "containers_ready"] and "gate_true" in stages
    assert stages.count("registered") == 2 and stages.count("alive") == 2, "one mark per listener"


class _KeepOpen:
    """The CLI closes its store when done; the harness owns this one."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def close(self) -> None:
        return None


def test_timeline_and_latency_commands_read_the_recorded_stages(
    env: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lb_id = serving(env, 3)
    env.clock.advance(2.0)
    env.cluster.update_pod("default", "web-0", deletion_timestamp="2023-11-14T22:20:00Z")
    env.invoke("unbind", {"step": "unbind", "pod_uids": ["uid-web-0"]})
    env.clock.advance(1.5)
    env.cluster.remove_pod("default", "web-0")
    env.invoke("unbind", {"step": "unbind", "pod_uids": ["uid-web-0"], "reason": "Pod deleted"})
    assert "10.0.0.1" not in {ip for ip, _, _ in env.targets(lb_id)}
    deps = dataclasses.replace(env.deps, store=_KeepOpen(env.deps.store))
    monkeypatch.setattr("cli._stack.build_deps", lambda _settings, **_kw: deps)

    assert main(["timeline", "--pod", "default/web-0"]) == 0
    out = capsys.readouterr().out
    stages = [line.split()[2] for line in out.splitlines() if line.startswith("  2023-")]
    assert stages == [
        "admitted",
        "containers_ready",
        "registered",
        "alive",
        "gate_true",
        "deletion_seen",
        "weight_zero",
        "deregistered",
    ], out

    assert main(["latency", "--service", "default/web", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows["alive->gate_true"]["count"] == 3
    assert rows["deletion_seen->weight_zero"]["count"] == 1
    assert rows["weight_zero->deregistered"]["p50_s"] == pytest.approx(1.5)
    assert main(["timeline", "--pod", "default/nobody"]) == 1
    assert "no timeline recorded" in capsys.readouterr().out


def test_two_flips_decided_together_announce_the_transition_once(env: Env) -> None:
    """The health notification and the poll often see the same Alive at once: both flips plan gate True,
    the second patch finds the live Pod already True, so the Pod gets one ReadinessGateReady Event."""
    lb_id = serving(env, 2)
    env.cluster.put_pod(pod("web-new", "10.0.1.1"))
    assert env.invoke("bind", {"step": "bind", "pods": [{"namespace": "default", "name": "web-new"}]})["ok"]
    env.drain()
    env.clb.set_target_health(
        lb_id, env.deps.require_clb().list_listeners(lb_id)[0].listener_id, "10.0.1.1", 8080, "Alive"
    )
    barrier = threading.Barrier(2, timeout=30)
    patch = env.cluster.set_pod_condition

    def patch_after_both_planned(*args: Any) -> bool:
        barrier.wait()  # both flips read the Pod (gate False) before either writes
        return patch(*args)

    env.cluster.set_pod_condition = patch_after_both_planned  # type: ignore[method-assign]
    flip = {"step": "flip", "pods": [{"namespace": "default", "name": "web-new"}]}
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: env.invoke("flip", flip), range(2)))
    assert all(r["ok"] for r in results)
    assert env.gate("web-new")[:2] == ("True", GATE_READY_REASON)  # type: ignore[index]
    ready_events = [e for e in env.cluster.events if e[0].name == "web-new" and e[2] == "ReadinessGateReady"]
    assert len(ready_events) == 1, ready_events
