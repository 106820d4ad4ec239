"""Crashes between a CLB call and its binding record, and lost / duplicated / reordered events, converge.

A crashed step leaves the CLB changed but the store behind (a "registering" record for a registered
target, a binding for a deregistered one); SCF retries it, maybe after other steps ran. Events reach the
router lost, twice, or out of order, and async invocations run out of order and more than once. After
one reconcile pass the targets, records and gates must match the Pods again.
"""

from __future__ import annotations

import pytest

from emulators.clb.faults import FaultRule
from tests.chaos.test_rollout_faults import rolling_update
from tests.chaos.world import chaos_world


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_crash_between_clb_call_and_binding_record(seed: int) -> None:
    with chaos_world(seed) as world:
        world.create_service()
        world.store.rate = 0.5
        old = [world.add_pod() for _ in range(6)]
        world.deliver()
        world.run_queue()
        rolling_update(world, old)
        crashes = world.store.crashes
        world.settle()
        assert crashes > 0
        assert world.violations() == []
        assert world.write_calls() <= world.write_budget()


def test_every_step_crashing_leaves_only_what_reconcile_repairs() -> None:
    with chaos_world(6) as world:
        world.create_service()
        world.store.rate = 1.0  # every binding write after a CLB call dies: all retries dead-letter
        old = [world.add_pod() for _ in range(4)]
        world.deliver()
        world.run_queue()
        rolling_update(world, old, waves=2)
        assert world.queue.dead_letters
        world.settle()
        assert world.violations() == []


@pytest.mark.parametrize("seed", [7, 8, 9])
def test_lost_duplicated_and_reordered_events(seed: int) -> None:
    with chaos_world(seed) as world:
        world.create_service()
        world.drop_event_rate = 0.3
        world.duplicate_event_rate = 0.4
        world.reorder = True
        world.queue.duplicate_rate = 0.4
        old = [world.add_pod() for _ in range(8)]
        world.deliver()
        world.run_queue()
        new = rolling_update(world, old, waves=4)
        flaky = new[0]
        world.update_pod(flaky, containers_ready=False)  # a new Pod fails its probe for a while
        world.deliver()
        world.run_queue()
        world.settle()
        assert world.lost_events > 0
        assert world.violations() == []
        assert world.write_calls() <= world.write_budget()


def test_everything_at_once_with_ip_reuse() -> None:
    with chaos_world(10) as world:
        world.create_service()
        world.set_faults(
            FaultRule(action="BatchRegisterTargets", drop_response=True, rate=0.4, seed=1),
            FaultRule(action="BatchDeregisterTargets", error_code="FailedOperation.ResourceInOperating", rate=0.5),
            FaultRule(action="BatchModifyTargetWeight", fail_task=True, rate=0.3, seed=2),
            FaultRule(action="DescribeTargets", error_code="RequestLimitExceeded", rate=0.2, seed=3),
        )
        world.store.rate = 0.2
        world.drop_event_rate = 0.2
        world.duplicate_event_rate = 0.3
        world.reorder = True
        world.queue.duplicate_rate = 0.3
        old = [world.add_pod() for _ in range(6)]
        world.deliver()
        world.run_queue()
        # A Pod is deleted and its IP handed to a new Pod at once (VPC-CNI reuses addresses).
        world.delete_pod(old[0])
        reused = world.add_pod(reuse_ip_of=old[0])
        world.deliver()
        world.run_queue()
        rolling_update(world, old[1:], waves=5)
        world.settle()
        assert world.cluster.get_pod("default", reused) is not None
        assert world.violations() == []


def test_a_removed_port_whose_binding_cleanup_crashed_leaves_no_records_behind() -> None:
    """Found by `make chaos` (seeds 3, 21): the service step deleted the listener of a removed port and died
    before forgetting its binding records; its retry no longer saw the listener, so the records stayed."""
    with chaos_world(11, durable_store=True) as world:
        lb_id = world.create_service()
        for _ in range(3):
            world.add_pod()
        world.toggle_port(82)
        world.deliver()
        world.run_queue()
        world.tick(10)
        assert len(world.store.raw.list_bindings(lb_id=lb_id)) == 9
        world.store.rate = 1.0  # every binding delete right after the CLB call dies
        world.toggle_port(82)
        world.deliver()
        world.run_queue()
        assert world.store.crashes > 0
        world.end_chaos()
        world.tick(2 * 60)  # two reconcile periods
        assert world.violations() == []
        assert len(world.store.raw.list_bindings(lb_id=lb_id)) == 6
