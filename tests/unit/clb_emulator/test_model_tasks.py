"""Async tasks, the per-CLB instance lock, rollback of failed creates and rate windows, on a fake clock."""

from __future__ import annotations

import pytest

from emulators.clb.config import ClbEmulatorConfig
from emulators.clb.errors import ClbApiError
from emulators.clb.faults import FaultRule
from emulators.clb.model import ClbModel
from shared.clock import FakeClock
from tests.unit.clb_emulator.conftest import ModelHarness


def _code(h: ModelHarness, action: str, **params: object) -> str:
    with pytest.raises(ClbApiError) as info:
        h.call(action, **params)
    return info.value.code


def test_task_runs_for_the_configured_duration(h: ModelHarness) -> None:
    created = h.call("CreateLoadBalancer", LoadBalancerType="OPEN")
    h.clock.advance(0.049)
    assert h.call("DescribeTaskStatus", TaskId=created["RequestId"])["Status"] == 2
    h.clock.advance(0.001)
    assert h.call("DescribeTaskStatus", TaskId=created["RequestId"])["Status"] == 0


def test_zero_duration_tasks_finish_at_once() -> None:
    model = ClbModel(ClbEmulatorConfig(task_duration_s=0), clock=FakeClock().monotonic)
    created = model.call("CreateLoadBalancer", {"LoadBalancerType": "OPEN"})
    lb_id = created["LoadBalancerIds"][0]
    model.call("CreateListener", {"LoadBalancerId": lb_id, "Ports": [80], "Protocol": "TCP"})
    model.call("CreateListener", {"LoadBalancerId": lb_id, "Ports": [81], "Protocol": "TCP"})
    assert model.call("DescribeListeners", {"LoadBalancerId": lb_id})["TotalCount"] == 2


def test_lock_is_per_load_balancer(h: ModelHarness) -> None:
    first, second = h.lb(), h.lb()
    h.call("CreateListener", LoadBalancerId=first, Ports=[80], Protocol="TCP")
    assert _code(h, "DeleteLoadBalancer", LoadBalancerIds=[first]) == "FailedOperation.ResourceInOperating"
    h.call("CreateListener", LoadBalancerId=second, Ports=[80], Protocol="TCP")


def test_reads_are_not_blocked_by_a_running_task(h: ModelHarness) -> None:
    lb_id = h.lb()
    h.call("CreateListener", LoadBalancerId=lb_id, Ports=[80], Protocol="TCP")
    assert h.call("DescribeLoadBalancers", LoadBalancerIds=[lb_id])["TotalCount"] == 1
    assert h.call("DescribeTargets", LoadBalancerId=lb_id)["Listeners"] == []


def test_failed_create_task_removes_the_load_balancer(h: ModelHarness) -> None:
    h.model.set_fault({"action": "CreateLoadBalancer", "fail_task": True})
    created = h.call("CreateLoadBalancer", LoadBalancerType="OPEN")
    assert h.call("DescribeLoadBalancers")["TotalCount"] == 1
    h.finish()
    assert h.call("DescribeTaskStatus", TaskId=created["RequestId"])["Status"] == 1
    assert h.call("DescribeLoadBalancers")["TotalCount"] == 0


def test_a_slow_task_keeps_the_load_balancer_locked_for_its_delay(h: ModelHarness) -> None:
    lb_id = h.lb()
    h.model.set_fault({"action": "CreateListener", "task_delay_s": 3.0})
    created = h.call("CreateListener", LoadBalancerId=lb_id, Ports=[80], Protocol="TCP")
    h.clock.advance(2.9)
    assert h.call("DescribeTaskStatus", TaskId=created["RequestId"])["Status"] == 2
    assert _code(h, "CreateListener", LoadBalancerId=lb_id, Ports=[81], Protocol="TCP") == (
        "FailedOperation.ResourceInOperating"
    )
    h.clock.advance(0.2)
    assert h.call("DescribeTaskStatus", TaskId=created["RequestId"])["Status"] == 0
    h.model.clear_faults()
    h.call("CreateListener", LoadBalancerId=lb_id, Ports=[81], Protocol="TCP")
    h.clock.advance(0.05)  # the next task takes the configured duration only
    assert h.call("DescribeListeners", LoadBalancerId=lb_id)["TotalCount"] == 2


def test_a_negative_task_delay_is_refused() -> None:
    with pytest.raises(ClbApiError, match="task_delay_s"):
        FaultRule.from_dict({"action": "CreateListener", "task_delay_s": -1})


def test_rate_limit_is_configurable_per_action(h: ModelHarness) -> None:
    h.model.update_config({"rate_limits": {"DescribeLoadBalancers": 2}})
    h.call("DescribeLoadBalancers")
    h.call("DescribeLoadBalancers")
    assert _code(h, "DescribeLoadBalancers") == "RequestLimitExceeded"
    h.clock.advance(0.5)
    assert _code(h, "DescribeLoadBalancers") == "RequestLimitExceeded"
    h.clock.advance(0.5)
    h.call("DescribeLoadBalancers")


def test_backend_quota_is_configurable(h: ModelHarness) -> None:
    h.model.update_config({"backend_quota": 2})
    lb_id = h.lb()
    listener_id = h.listener(lb_id)
    h.bind(lb_id, listener_id, "127.2.0.1", "127.2.0.2")
    with pytest.raises(ClbApiError) as info:
        h.bind(lb_id, listener_id, "127.2.0.3")
    assert info.value.code == "LimitExceeded" and "quota is 2" in info.value.message


def test_unknown_action_and_type_errors(h: ModelHarness) -> None:
    assert _code(h, "CreateTopic") == "InvalidAction"
    assert _code(h, "CreateLoadBalancer", LoadBalancerType=1) == "InvalidParameter.FormatError"
    assert _code(h, "DescribeLoadBalancers", Limit="10") == "InvalidParameter.FormatError"
    assert _code(h, "DescribeLoadBalancers", Limit=101) == "InvalidParameterValue.Range"


def test_call_log_counts_every_action_and_error(h: ModelHarness) -> None:
    lb_id = h.lb()
    with pytest.raises(ClbApiError):
        h.call("DeleteLoadBalancer", LoadBalancerIds=["lb-nothere0"])
    log = h.model.calls()
    assert log["counts"] == {"CreateLoadBalancer": 1, "DeleteLoadBalancer": 1}
    assert log["calls"][0]["load_balancer_id"] is None and log["calls"][0]["error_code"] is None
    assert log["calls"][1]["error_code"] == "InvalidParameter.LBIdNotFound"
    assert lb_id


def test_config_update_rejects_unknown_keys_and_bad_values(h: ModelHarness) -> None:
    with pytest.raises(ClbApiError):
        h.model.update_config({"no_such_key": 1})
    with pytest.raises(ClbApiError):
        h.model.update_config({"task_duration_s": -1})
    with pytest.raises(ClbApiError):
        h.model.update_config({"rate_limits": {"X": "fast"}})
    assert h.model.update_config({"task_duration_s": 0}).task_duration_s == 0
