"""A slice of `make chaos` in every `make test`: 20 seeded scenarios, each checked after every operation.

Each seed draws its own mix of Pod churn, Service and TkeServiceConfig edits, event loss and relay
restarts, CLB, Kubernetes and KV store faults and crashes (`tests.chaos.scenarios`); S1-S3 must hold at
every step and the world must converge within two reconcile periods of the faults stopping (L1). A failing
seed is replayed, operation by operation, with `make chaos SEED=<seed>`.
"""

from __future__ import annotations

import pytest

from tests.chaos.scenarios import CONVERGENCE_LIMIT_S, draw_operations, run_scenario, summary

SLICE = range(20)


@pytest.mark.parametrize("seed", SLICE)
def test_seeded_scenario_holds_every_invariant_and_converges(seed: int) -> None:
    result = run_scenario(seed)
    assert result.ok, summary([result])
    assert result.converged_after_s is not None and result.converged_after_s <= CONVERGENCE_LIMIT_S


def test_the_slice_injects_every_kind_of_fault() -> None:
    kinds = {op[0] for seed in SLICE for op in draw_operations(seed)}
    assert kinds >= {
        "clb-faults", "kube-faults", "store-outage", "store-restart", "crash", "events", "relay-restart",
        "edit-ports", "edit-tke-config", "wave", "reuse",
    }  # fmt: skip


def test_a_broken_world_is_reported_by_the_monitor() -> None:
    """The checker itself: a Ready Pod's target removed behind the product's back is an S2 violation, and a
    gate written True for an unregistered Pod is an S1 violation."""
    from shared.domain.models import GATE_CONDITION_TYPE, GATE_READY_REASON, PodCondition
    from tests.chaos.invariants import Monitor
    from tests.chaos.world import chaos_world

    with chaos_world(0) as world:
        lb_id = world.create_service()
        names = [world.add_pod() for _ in range(2)]
        world.deliver()
        world.run_queue()
        monitor = Monitor(world)
        world.tick(10, after_each=monitor.check)
        assert monitor.violations == []
        pod = world.cluster.get_pod("default", names[0])
        assert pod is not None
        clb = world.deps.require_clb()
        mine = [t for t in clb.list_targets(lb_id) if t.ip == pod.ip]
        clb.deregister_targets(lb_id, mine)
        world.model.settle()
        monitor.check()
        assert [v.rule for v in monitor.violations] == ["S2", "S2"]  # one per listener
        stranger = world.add_pod()
        fresh = world.cluster.get_pod("default", stranger)
        assert fresh is not None
        world.kube.set_pod_condition(
            fresh, PodCondition(type=GATE_CONDITION_TYPE, status="True", reason=GATE_READY_REASON, message="x")
        )
        assert [v.rule for v in monitor.violations] == ["S2", "S2", "S1"]
