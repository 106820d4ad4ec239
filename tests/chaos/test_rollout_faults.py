"""A rolling update under CLB faults converges: targets, binding records and gates match the Pods.

Each case replaces 6 Pods by 6 new ones in waves (create, terminate the old, delete them) while the CLB
emulator answers with injected faults: the instance lock (`FailedOperation.ResourceInOperating`) in
bursts, `RequestLimitExceeded`, `InternalError`, responses dropped after the change was applied, async
tasks that fail, and latency. Then the chaos stops and one reconcile pass (with the health poll and
the follow-ups it queues) must leave no violated invariant, with write calls within budget.
"""

from __future__ import annotations

import pytest

from emulators.clb.faults import FaultRule
from tests.chaos.world import World, chaos_world

FAULT_PROFILES: dict[str, list[FaultRule]] = {
    "instance-lock-bursts": [
        FaultRule(action=a, error_code="FailedOperation.ResourceInOperating", count=8, seed=s)
        for s, a in enumerate(("BatchRegisterTargets", "BatchDeregisterTargets", "BatchModifyTargetWeight"))
    ],
    "throttled-and-internal-errors": [
        FaultRule(action="BatchRegisterTargets", error_code="RequestLimitExceeded", rate=0.5, seed=11),
        FaultRule(action="DescribeTargets", error_code="RequestLimitExceeded", rate=0.3, seed=12),
        FaultRule(action="BatchDeregisterTargets", error_code="InternalError", rate=0.5, seed=13),
        FaultRule(action="DescribeListeners", latency_s=0.3),
    ],
    "dropped-responses-after-apply": [
        FaultRule(action="BatchRegisterTargets", drop_response=True, rate=0.6, seed=21),
        FaultRule(action="BatchDeregisterTargets", drop_response=True, rate=0.6, seed=22),
        FaultRule(action="BatchModifyTargetWeight", drop_response=True, drop_status=502, rate=0.6, seed=23),
    ],
    "failed-async-tasks": [
        FaultRule(action="BatchModifyTargetWeight", fail_task=True, rate=0.7, seed=31),
        FaultRule(action="BatchRegisterTargets", error_code="FailedOperation.ResourceInOperating", rate=0.3, seed=32),
    ],
    "everything-persistent": [
        FaultRule(action="BatchRegisterTargets", error_code="InternalError", rate=1.0),
        FaultRule(action="BatchDeregisterTargets", error_code="InternalError", rate=1.0),
        FaultRule(action="BatchModifyTargetWeight", error_code="InternalError", rate=1.0),
    ],
}


def rolling_update(world: World, old: list[str], *, waves: int = 3) -> list[str]:
    new: list[str] = []
    per_wave = max(1, len(old) // waves)
    for start in range(0, len(old), per_wave):
        retiring = old[start : start + per_wave]
        new += [world.add_pod() for _ in retiring]
        world.deliver()
        world.run_queue()
        for name in retiring:
            world.terminate_pod(name)
        world.deliver()
        world.run_queue()
        world.clock.advance(10)
        for name in retiring:
            world.delete_pod(name)
        world.deliver()
        world.run_queue()
    return new


@pytest.mark.parametrize("profile", sorted(FAULT_PROFILES))
@pytest.mark.parametrize("seed", [1, 2])
def test_rolling_update_under_clb_faults_converges(profile: str, seed: int) -> None:
    with chaos_world(seed) as world:
        world.create_service()
        old = [world.add_pod() for _ in range(6)]
        world.deliver()
        world.run_queue()
        world.set_faults(*FAULT_PROFILES[profile])
        rolling_update(world, old)
        world.settle()
        assert world.violations() == []
        assert world.write_calls() <= world.write_budget(), world.model.calls()["counts"]
        assert world.cluster.get_pod("default", old[0]) is None and len(world.eligible_pods()) == 6


def test_faults_did_fire_so_the_cases_test_something() -> None:
    with chaos_world(1) as world:
        world.create_service()
        old = [world.add_pod() for _ in range(6)]
        world.deliver()
        world.run_queue()
        world.set_faults(*FAULT_PROFILES["dropped-responses-after-apply"], *FAULT_PROFILES["instance-lock-bursts"])
        rolling_update(world, old)
        fired = {rule["action"]: rule["fired"] for rule in world.model.faults.rules()}
        world.settle()
        assert world.violations() == []
    assert all(count > 0 for count in fired.values()), fired
