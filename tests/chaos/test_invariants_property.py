"""Property: any seeded interleaving of Pod changes, event loss/duplication/reordering, CLB faults and
crashes converges after one reconcile pass. Hypothesis draws the scenarios, derandomized so CI is
deterministic; a failure prints the operation list that broke an invariant.

The invariant checker itself is tested first: a world broken behind the system's back must be reported.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulators.clb.faults import FaultRule
from shared.domain.models import Target
from tests.chaos.world import World, chaos_world

FAULTS: dict[str, list[FaultRule]] = {
    "none": [],
    "lock": [
        FaultRule(action="BatchRegisterTargets", error_code="FailedOperation.ResourceInOperating", rate=0.5, seed=1),
        FaultRule(action="BatchDeregisterTargets", error_code="FailedOperation.ResourceInOperating", rate=0.5, seed=2),
    ],
    "throttle": [
        FaultRule(action="DescribeTargets", error_code="RequestLimitExceeded", rate=0.4, seed=3),
        FaultRule(action="BatchModifyTargetWeight", error_code="RequestLimitExceeded", rate=0.5, seed=4),
    ],
    "drop": [
        FaultRule(action="BatchRegisterTargets", drop_response=True, rate=0.5, seed=5),
        FaultRule(action="BatchDeregisterTargets", drop_response=True, rate=0.5, seed=6),
    ],
    "task": [FaultRule(action="BatchModifyTargetWeight", fail_task=True, rate=0.5, seed=7)],
}

pod_index = st.integers(min_value=0, max_value=9)
operations = st.one_of(
    st.tuples(st.just("add"), st.booleans(), st.booleans()),
    st.tuples(st.sampled_from(["ready", "unready", "terminate", "delete", "relabel", "reuse", "sick"]), pod_index),
    st.tuples(st.just("deliver")),
    st.tuples(st.just("run")),
    st.tuples(st.just("faults"), st.sampled_from(sorted(FAULTS))),
    st.tuples(st.just("crash"), st.sampled_from([0.0, 0.3, 1.0])),
    st.tuples(st.just("events"), st.floats(0, 0.5), st.floats(0, 0.5), st.booleans()),
    st.tuples(st.just("wait"), st.sampled_from([1.0, 15.0, 40.0])),
)


def apply(world: World, op: tuple[Any, ...]) -> None:
    kind = op[0]
    live = world.live_pod_names()
    if kind == "add":
        world.add_pod(ready=op[1], healthy=op[2])
    elif kind in ("deliver", "run"):
        world.deliver()
        if kind == "run":
            world.run_queue()
    elif kind == "faults":
        world.model.clear_faults()
        world.set_faults(*FAULTS[op[1]])
    elif kind == "crash":
        world.store.rate = op[1]
    elif kind == "events":
        world.drop_event_rate, world.duplicate_event_rate, world.reorder = op[1], op[2], op[3]
        world.queue.duplicate_rate = op[2]
    elif kind == "wait":
        world.clock.advance(op[1])
    elif live:
        name = live[op[1] % len(live)]
        if kind == "ready":
            world.update_pod(name, containers_ready=True)
        elif kind == "unready":
            world.update_pod(name, containers_ready=False)
        elif kind == "terminate":
            world.terminate_pod(name)
        elif kind == "delete":
            world.delete_pod(name)
        elif kind == "relabel":
            pod = world.cluster.pods[("default", name)]
            world.update_pod(name, labels={"app": "other" if pod.labels.get("app") == "web" else "web"})
        elif kind == "reuse":
            world.delete_pod(name)
            world.add_pod(reuse_ip_of=name)
        elif kind == "sick":
            world.pods[name].healthy = not world.pods[name].healthy


# 40 whole worlds run through the real steps: about a minute on a quiet 2-core machine, several under load.
@pytest.mark.timeout(900)
@settings(
    max_examples=40,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(ops=st.lists(operations, min_size=5, max_size=40), seed=st.integers(0, 1000))
def test_any_interleaving_converges_after_one_reconcile(ops: list[tuple[Any, ...]], seed: int) -> None:
    with chaos_world(seed) as world:
        world.create_service()
        for _ in range(3):
            world.add_pod()
        for op in ops:
            apply(world, op)
        world.settle()
        assert world.violations() == []
        assert world.write_calls() <= world.write_budget()


def test_the_checker_reports_a_world_broken_behind_the_systems_back() -> None:
    with chaos_world(0) as world:
        lb_id = world.create_service()
        pods = [world.add_pod() for _ in range(3)]
        world.deliver()
        world.run_queue()
        world.settle()
        assert world.violations() == []
        listener = world.deps.require_clb().list_listeners(lb_id)[0].listener_id
        world.deps.require_clb().register_targets(lb_id, [Target(listener_id=listener, ip="10.9.9.9", port=8080)])
        world.cluster.remove_pod("default", pods[1])  # deleted, and the event never sent
        world.cluster.update_pod("default", pods[2], containers_ready=False)
        problems = "\n".join(world.violations())
        assert "10.9.9.9" in problems and "without a binding record" in problems
        assert "dead or unwanted target bound" in problems and "orphaned binding record: web-1" in problems
        assert "orphaned binding record: web-2" in problems
        report = world.settle()
        # One reconcile repairs all of it, the hand-added target (no live Pod has its IP) included.
        assert world.violations() == []
        walked = [step for s in report["services"] for step in s.get("steps", []) if step["step"] == "bind"]
        assert any("10.9.9.9" in str(step["result"]) for step in walked)
        assert "RemovedExtraTargets" in world.cluster.event_reasons("Service")


def test_ip_reused_before_the_old_pods_delete_arrives() -> None:
    with chaos_world(0) as world:
        lb_id = world.create_service()
        old = world.add_pod()
        world.deliver()
        world.run_queue()
        world.delete_pod(old)
        late = world.withhold_events()
        new = world.add_pod(reuse_ip_of=old)
        world.deliver()
        world.run_queue()
        world.late_events(late)  # the old Pod's DELETED event arrives only now
        world.deliver()
        world.run_queue()
        ip = world.pods[new].ip
        # Before any reconcile: the live Pod kept its backends on both listeners.
        assert {(t.ip, t.port) for t in world.deps.require_clb().list_targets(lb_id)} == {(ip, 8080), (ip, 9090)}
        world.settle()
        assert world.violations() == []
