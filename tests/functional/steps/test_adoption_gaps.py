"""Issue 15 follow-ups: what a gated Pod tells its user when the CLB cannot serve it, and Pods admitted
without the gate because their Service reached the selector index after them.

(a) A Pod selected by a Service whose port is held by a foreign listener on an adopted CLB gets a False
gate condition saying so (reason `ListenerPortConflict`, naming the listener and what to do) as soon as
the service step sees the conflict, not no condition at all; fail-open, when set, still releases it.
(b) The admission webhook reads the selector index, which the service step writes asynchronously: the
entry is written before the CLB is ensured (so a slow or failing CLB create leaves no window), and a
selected Pod that was admitted without the gate anyway gets one `ReadinessGateMissing` Warning on the
Service saying why and that only re-creating the Pod adds a gate.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from shared.domain.errors import RetryableError
from shared.domain.models import FAIL_OPEN_ANNOTATION, ListenerSpec, LoadBalancerSpec, Target
from tests.conftest import load_event
from tests.functional.steps.conftest import Env, pod, service

EXISTED = "service.kubernetes.io/tke-existed-lbid"


def _adopted_clb_with_foreign_http(env: Env) -> tuple[str, str]:
    clb = env.deps.require_clb()
    existing = clb.create_load_balancer(LoadBalancerSpec(name="shared", tags={"team": "ops"}))
    foreign = clb.create_listener(existing.lb_id, ListenerSpec(port=80, name="ops-http"))
    clb.register_targets(existing.lb_id, [Target(listener_id=foreign, ip="10.9.9.9", port=8080)])
    return existing.lb_id, foreign


def _warnings(env: Env, reason: str, kind: str | None = None) -> list[str]:
    return [
        message
        for ref, type_, r, message in env.cluster.events
        if type_ == "Warning" and r == reason and (kind is None or ref.kind == kind)
    ]


def test_a_pod_behind_a_conflicting_port_gets_a_false_gate_naming_the_conflict(env: Env) -> None:
    lb_id, foreign = _adopted_clb_with_foreign_http(env)
    env.cluster.put_service(service(**{EXISTED: lb_id}))
    env.cluster.put_pod(pod("web-1", "10.0.0.1"))
    assert env.invoke("service", "service_web")["ok"]
    env.drain()

    gate = env.gate("web-1")
    assert gate is not None, "a gated Pod behind a conflicting port must say why it is not ready"
    status, reason, message = gate
    assert (status, reason) == ("False", "ListenerPortConflict")
    assert foreign in message and "TCP:80" in message and lb_id in message and "delete or move" in message
    [pod_warning] = _warnings(env, "ListenerPortConflict", kind="Pod")
    assert foreign in pod_warning
    assert env.targets(lb_id) == {("10.9.9.9", 8080, 10)}  # still nothing of ours in the foreign listener

    assert env.invoke("service", "service_web")["ok"]  # a later pass repeats neither write nor Warning
    env.drain()
    assert len(_warnings(env, "ListenerPortConflict", kind="Pod")) == 1


def test_a_pod_created_after_the_service_step_gets_the_conflict_gate_from_its_bind(env: Env) -> None:
    """The usual order: the Service is ensured first; the Pod's own bind must ask for its flip."""
    lb_id, foreign = _adopted_clb_with_foreign_http(env)
    env.cluster.put_service(service(**{EXISTED: lb_id}))
    assert env.invoke("service", "service_web")["ok"]
    env.drain()
    env.cluster.put_pod(pod("web-1", "10.0.0.1"))
    assert env.invoke("bind", "bind_pod")["ok"]
    env.drain()
    status, reason, message = env.gate("web-1") or ("", "", "")
    assert (status, reason) == ("False", "ListenerPortConflict") and foreign in message


def test_fail_open_still_releases_a_pod_behind_a_conflicting_port(env: Env) -> None:
    lb_id, _ = _adopted_clb_with_foreign_http(env)
    env.cluster.put_service(service(**{EXISTED: lb_id, FAIL_OPEN_ANNOTATION: "30"}))
    env.cluster.put_pod(pod("web-1", "10.0.0.1"))
    assert env.invoke("service", "service_web")["ok"]
    env.drain(delayed=True)
    status, reason, message = env.gate("web-1") or ("", "", "")
    assert (status, reason) == ("True", "LoadBalancerNetworkGroupFailOpen")
    assert "held by listener" in message


def _admit(env: Env) -> dict[str, Any]:
    event = copy.deepcopy(load_event("admission_pod_create"))
    result = env.invoke("admission", event)
    assert result["statusCode"] == 200, result
    return json.loads(result["body"])["response"]


def test_the_selector_index_is_written_before_the_clb_is_ensured(env: Env) -> None:
    """A CLB create that fails (or takes long) must not leave the Service out of the index meanwhile."""
    _admit(env)  # the namespace's index is warm (no Service yet): admission no longer lists live
    env.cluster.put_service(service())
    env.clb.set_fault({"action": "CreateLoadBalancer", "fail_task": True, "count": 1})
    with pytest.raises(RetryableError):
        env.invoke("service", "service_web")
    assert "patch" in _admit(env), "a Pod created while the CLB is being created must get the gate"


def test_pods_admitted_before_their_service_was_indexed_get_one_warning(env: Env) -> None:
    assert "patch" not in _admit(env)  # warm, empty index: the Service is created in the same second
    env.cluster.put_service(service())
    env.cluster.put_pod(pod("web-1", "10.0.0.1", readiness_gates=[]))
    env.cluster.put_pod(pod("web-2", "10.0.0.2", readiness_gates=[]))
    env.cluster.put_pod(pod("web-3", "10.0.0.3"))  # admitted later, with the gate
    assert env.invoke("service", "service_web")["ok"]
    env.drain()

    [warning] = _warnings(env, "ReadinessGateMissing", kind="Service")
    assert "default/web-1" in warning and "default/web-2" in warning and "web-3" not in warning
    assert "rollout restart" in warning and "ReplicaSet web-rs1" in warning
    assert env.targets(env.lb_id()) >= {("10.0.0.1", 8080, 10), ("10.0.0.2", 8080, 10)}  # still served

    assert env.invoke("service", "service_web")["ok"]  # told once per Pod, not on every pass
    env.drain()
    assert len(_warnings(env, "ReadinessGateMissing")) == 1


def test_a_host_network_pod_is_not_reported_as_missing_its_gate(env: Env) -> None:
    """hostNetwork Pods never get the gate by design (admission warns, the limits refuse them)."""
    env.cluster.put_service(service())
    env.cluster.put_pod(pod("web-1", "10.0.0.1", readiness_gates=[], host_network=True))
    assert env.invoke("service", "service_web")["ok"]
    env.drain()
    assert _warnings(env, "ReadinessGateMissing") == []
