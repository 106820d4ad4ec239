"""Router + steps + reconcile end to end: duplicated, reordered and lost events still converge.

Relay batches (signed, as the relay sends them) go through `shared.router.route_signed`; the steps
they dispatch run from the queue against the CLB emulator model and a fake cluster. A rolling update
is delivered with duplicates, out of order and with a whole batch lost; one reconcile pass then
brings the CLB backends and the gate conditions to the truth.
"""

from __future__ import annotations

import itertools
import json
import uuid
from typing import Any

from shared.domain.models import GATE_CONDITION_TYPE, PodInfo, ServiceInfo
from shared.events.apigw import ApiGatewayEvent
from shared.reconcile import reconcile_all
from shared.router import route_signed
from shared.signing import sign_batch
from tests.functional.plumbing.conftest import HMAC_KEY
from tests.functional.steps.conftest import Env, pod, service

_rv = itertools.count(100)


def pod_json(p: PodInfo, *, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": p.name,
        "namespace": p.namespace,
        "uid": p.uid,
        "resourceVersion": str(next(_rv)),
        "labels": p.labels,
    }
    if deleting:
        meta["deletionTimestamp"] = "2023-11-14T22:30:00Z"
    conditions = [{"type": "ContainersReady", "status": "True" if p.containers_ready else "False"}]
    return {
        "kind": "Pod",
        "metadata": meta,
        "spec": {"readinessGates": [{"conditionType": GATE_CONDITION_TYPE}]},
        "status": {"podIP": p.ip, "conditions": conditions},
    }


def service_json(s: ServiceInfo) -> dict[str, Any]:
    return {
        "kind": "Service",
        "metadata": {
            "name": s.name,
            "namespace": s.namespace,
            "uid": s.uid,
            "resourceVersion": str(next(_rv)),
            "annotations": s.annotations,
        },
        "spec": {"type": s.type, "selector": s.selector},
    }


def deliver(env: Env, *items: tuple[str, str, dict[str, Any]]) -> dict[str, Any]:
    batch = {
        "batchId": uuid.uuid4().hex,
        "relay": "test",
        "createdAt": env.clock.now(),
        "droppedTotal": 0,
        "items": [{"source": "watch", "type": t, "resource": r, "object": o} for t, r, o in items],
    }
    body = json.dumps(batch).encode()
    headers = sign_batch(HMAC_KEY.encode(), body, batch_id=batch["batchId"], now=env.clock.now()).as_dict()
    event = {"requestContext": {"httpMethod": "POST"}, "httpMethod": "POST", "headers": headers, "body": body.decode()}
    response = route_signed(env.deps, ApiGatewayEvent.model_validate(event))
    assert response.status_code == 200, response.body
    return dict(json.loads(response.body))


def healthy(env: Env, lb_id: str, *ips: str) -> None:
    for ip in ips:
        env.set_health(lb_id, ip, 8080, "Alive")


def test_duplicated_reordered_and_lost_events_converge_after_one_reconcile(env: Env) -> None:
    web = service()
    env.cluster.put_service(web)
    deliver(env, ("ADDED", "services", service_json(web)))
    env.drain()
    lb_id = env.lb_id()
    old = [pod("web-a1", "10.0.0.1"), pod("web-a2", "10.0.0.2")]
    for p in old:
        env.cluster.put_pod(p)
    first = [("MODIFIED", "pods", pod_json(p)) for p in old]
    for _, _, obj in first:  # the API server's objects are at the versions their events carry
        env.cluster.update_pod("default", obj["metadata"]["name"], resource_version=obj["metadata"]["resourceVersion"])
    deliver(env, *first)
    again = deliver(env, *first)  # the same events re-sent in a new batch
    assert again["duplicates"] == 2 and again["dispatched"] == []
    env.drain()
    healthy(env, lb_id, "10.0.0.1", "10.0.0.2")
    env.drain(delayed=True)
    assert {(ip, w) for ip, _, w in env.targets(lb_id)} == {("10.0.0.1", 10), ("10.0.0.2", 10)}

    # Reordered: an older, terminating-looking version of a1 arrives after the ready one, whose version the
    # steps read from the API server: discarded.
    late = pod_json(old[0], deleting=True)
    late["metadata"]["resourceVersion"] = str(int(first[0][2]["metadata"]["resourceVersion"]) - 1)
    reordered = deliver(env, ("MODIFIED", "pods", late))
    assert reordered["stale"] == 1 and reordered["dispatched"] == []

    # Rolling update: b1, b2 replace a1, a2, and every batch about it is lost.
    for p in old:
        env.cluster.remove_pod(p.namespace, p.name)
    for p in (pod("web-b1", "10.0.1.1", owner="web-rs2"), pod("web-b2", "10.0.1.2", owner="web-rs2")):
        env.cluster.put_pod(p)
    assert {ip for ip, _, _ in env.targets(lb_id)} == {"10.0.0.1", "10.0.0.2"}  # drift

    report = reconcile_all(env.deps)  # the one reconcile
    assert report["walked"] == 1
    healthy(env, lb_id, "10.0.1.1", "10.0.1.2")
    env.drain(delayed=True)  # the follow-ups it queued (drain re-checks, flips)
    assert env.targets(lb_id) == {("10.0.1.1", 8080, 10), ("10.0.1.2", 8080, 10)}
    for name in ("web-b1", "web-b2"):
        gate = env.gate(name)
        assert gate is not None and gate[0] == "True", (name, gate)


def test_idle_reconcile_costs_only_a_listener_and_target_read_per_clb(env: Env) -> None:
    env.cluster.put_service(service())
    env.cluster.put_pod(pod("web-1", "10.0.0.1"))
    reconcile_all(env.deps)
    env.drain(delayed=True)
    healthy(env, env.lb_id(), "10.0.0.1")
    reconcile_all(env.deps)
    env.drain(delayed=True)
    reconcile_all(env.deps)  # settles the checkpoint after the flip changed the Pod
    before = env.counts()
    second = reconcile_all(env.deps)
    assert second["skipped"] == 1 and second["walked"] == 0
    spent = {k: v - before.get(k, 0) for k, v in env.counts().items() if v != before.get(k, 0)}
    # The checkpoint reads the CLB's listeners and targets (the gateway lists listeners to map targets
    # too): three reads, no writes at all.
    assert set(spent) <= {"DescribeTargets", "DescribeListeners"} and sum(spent.values()) <= 3


def test_a_listener_orphaned_by_a_port_removed_during_a_pass_is_removed_by_the_next(env: Env) -> None:
    from shared.domain.models import ServicePort
    from shared.steps import run_step

    ports = [
        ServicePort(name="http", port=80, target_port="http"),
        ServicePort(name="alt", port=81, target_port="http"),
    ]
    env.cluster.put_service(service(ports=ports))
    env.cluster.put_pod(pod("web-1", "10.0.0.1"))

    def remove_port_after_the_service_step(deps: Any, request: Any, *, dry_run: bool = False) -> dict[str, Any]:
        result = run_step(deps, request, dry_run=dry_run)
        if request.step == "service":  # the user edits the Service while the pass is still running
            live = env.cluster.services[("default", "web")]
            env.cluster.put_service(live.model_copy(update={"ports": ports[:1]}))
        return result

    assert reconcile_all(env.deps, runner=remove_port_after_the_service_step)["walked"] == 1
    env.drain(delayed=True)
    lb_id = env.lb_id()
    assert sorted(listener.port for listener in env.deps.require_clb().list_listeners(lb_id)) == [80, 81]
    report = reconcile_all(env.deps)  # the next pass must see the orphan, not skip by checkpoint
    env.drain(delayed=True)
    assert report["walked"] == 1
    assert [listener.port for listener in env.deps.require_clb().list_listeners(lb_id)] == [80]


def test_a_listener_changed_behind_our_back_is_walked(env: Env) -> None:
    from shared.domain.models import ListenerSpec

    env.cluster.put_service(service())
    env.cluster.put_pod(pod("web-1", "10.0.0.1"))
    for _ in range(3):
        reconcile_all(env.deps)
        env.drain(delayed=True)
    assert reconcile_all(env.deps)["walked"] == 0
    lb_id = env.lb_id()
    [listener] = env.deps.require_clb().list_listeners(lb_id)
    drifted = ListenerSpec(port=80, protocol=listener.protocol, scheduler="LEAST_CONN")
    env.deps.require_clb().modify_listener(lb_id, listener.listener_id, drifted)  # e.g. edited in the console
    assert reconcile_all(env.deps)["walked"] == 1
    env.drain(delayed=True)
    assert [lst.scheduler for lst in env.deps.require_clb().list_listeners(lb_id)] == [listener.scheduler]
