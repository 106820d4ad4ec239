"""Contract: backend registration, weights, quota, DescribeTargets and DescribeTargetHealth via the SDK."""

from __future__ import annotations

from typing import Any

from tests.contract.conftest import Harness


def _targets(count: int, port: int = 8080, **extra: Any) -> list[dict[str, Any]]:
    return [{"EniIp": f"127.2.{i // 250}.{i % 250 + 1}", "Port": port, **extra} for i in range(count)]


def _backends(clb: Harness, lb_id: str, listener_id: str) -> dict[tuple[str, int], int]:
    listeners = clb.call("DescribeTargets", {"LoadBalancerId": lb_id, "ListenerIds": [listener_id]}).Listeners
    return {(t.PrivateIpAddresses[0], t.Port): t.Weight for t in listeners[0].Targets or []}


def test_register_and_deregister_targets_are_async(clb: Harness) -> None:
    lb_id, listener_id = clb.lb_with_listener()
    base = {"LoadBalancerId": lb_id, "ListenerId": listener_id}
    registered = clb.call(
        "RegisterTargets", {**base, "Targets": _targets(2) + [{"EniIp": "127.2.9.9", "Port": 80, "Weight": 0}]}
    )
    assert _backends(clb, lb_id, listener_id) == {}
    assert clb.call("DescribeTaskStatus", {"TaskId": registered.RequestId}).Status == 2
    clb.finish_tasks()
    assert _backends(clb, lb_id, listener_id) == {
        ("127.2.0.1", 8080): 10,
        ("127.2.0.2", 8080): 10,
        ("127.2.9.9", 80): 0,
    }
    clb.call("DeregisterTargets", {**base, "Targets": _targets(1)})
    clb.finish_tasks()
    assert set(_backends(clb, lb_id, listener_id)) == {("127.2.0.2", 8080), ("127.2.9.9", 80)}


def test_register_targets_takes_at_most_twenty(clb: Harness) -> None:
    lb_id, listener_id = clb.lb_with_listener()
    payload = {"LoadBalancerId": lb_id, "ListenerId": listener_id, "Targets": _targets(21)}
    assert clb.error("RegisterTargets", payload) == "InvalidParameterValue.Length"
    assert clb.error("DeregisterTargets", payload) == "InvalidParameterValue.Length"


def test_weight_must_be_within_zero_and_hundred(clb: Harness) -> None:
    lb_id, listener_id = clb.lb_with_listener()
    payload = {"LoadBalancerId": lb_id, "ListenerId": listener_id, "Targets": _targets(1, Weight=101)}
    assert clb.error("RegisterTargets", payload) == "InvalidParameterValue.Range"
    batch = {
        "LoadBalancerId": lb_id,
        "Targets": [{"ListenerId": listener_id, "EniIp": "127.2.0.1", "Port": 80, "Weight": -1}],
    }
    assert clb.error("BatchRegisterTargets", batch) == "InvalidParameterValue.Range"


def test_targets_on_unknown_listener_or_load_balancer(clb: Harness) -> None:
    lb_id, _ = clb.lb_with_listener()
    payload = {"LoadBalancerId": lb_id, "ListenerId": "lbl-missing0", "Targets": _targets(1)}
    assert clb.error("RegisterTargets", payload) == "InvalidParameter.ListenerIdNotFound"
    payload["LoadBalancerId"] = "lb-missing0"
    assert clb.error("RegisterTargets", payload) == "InvalidParameter.LBIdNotFound"


def test_target_needs_an_address_and_a_port(clb: Harness) -> None:
    lb_id, listener_id = clb.lb_with_listener()
    base = {"LoadBalancerId": lb_id, "ListenerId": listener_id}
    assert clb.error("RegisterTargets", {**base, "Targets": [{"Port": 80}]}) == "MissingParameter"
    assert clb.error("RegisterTargets", {**base, "Targets": [{"EniIp": "127.2.0.1"}]}) == "MissingParameter"
    assert clb.error("RegisterTargets", {**base, "Targets": [{"EniIp": "not-an-ip", "Port": 80}]}) == (
        "InvalidParameter.FormatError"
    )


def test_batch_register_is_immediate_and_reports_unknown_listeners(clb: Harness) -> None:
    lb_id, listener_id = clb.lb_with_listener()
    targets = [{"ListenerId": listener_id, **t} for t in _targets(3)]
    targets.append({"ListenerId": "lbl-missing0", "EniIp": "127.2.5.5", "Port": 80})
    response = clb.call("BatchRegisterTargets", {"LoadBalancerId": lb_id, "Targets": targets})
    assert response.FailListenerIdSet == ["lbl-missing0"]
    assert len(_backends(clb, lb_id, listener_id)) == 3
    assert clb.call("DescribeTaskStatus", {"TaskId": response.RequestId}).Status == 0
    removed = clb.call("BatchDeregisterTargets", {"LoadBalancerId": lb_id, "Targets": targets[:2]})
    assert removed.FailListenerIdSet == []
    assert set(_backends(clb, lb_id, listener_id)) == {("127.2.0.3", 8080)}


def test_batch_calls_take_at_most_five_hundred(clb: Harness) -> None:
    lb_id, listener_id = clb.lb_with_listener()
    targets = [{"ListenerId": listener_id, **t} for t in _targets(501)]
    assert (
        clb.error("BatchRegisterTargets", {"LoadBalancerId": lb_id, "Targets": targets})
        == "InvalidParameterValue.Length"
    )
    assert clb.error("BatchDeregisterTargets", {"LoadBalancerId": lb_id, "Targets": targets}) == (
        "InvalidParameterValue.Length"
    )


def test_backend_quota_of_two_hundred_per_load_balancer(clb: Harness) -> None:
    lb_id = clb.create_lb()
    first, second = clb.create_listener(lb_id, 80), clb.create_listener(lb_id, 81)
    fill = [{"ListenerId": first, **t} for t in _targets(150)] + [{"ListenerId": second, **t} for t in _targets(50)]
    clb.call("BatchRegisterTargets", {"LoadBalancerId": lb_id, "Targets": fill})
    more = {"LoadBalancerId": lb_id, "Targets": [{"ListenerId": second, "EniIp": "127.3.0.1", "Port": 80}]}
    assert clb.error("BatchRegisterTargets", more) == "LimitExceeded"
    single = {"LoadBalancerId": lb_id, "ListenerId": second, "Targets": [{"EniIp": "127.3.0.1", "Port": 80}]}
    assert clb.error("RegisterTargets", single) == "LimitExceeded"
    # Re-registering bound targets adds nothing, so it is not refused.
    clb.call("BatchRegisterTargets", {"LoadBalancerId": lb_id, "Targets": fill[:10]})


def test_modify_target_weight(clb: Harness) -> None:
    lb_id, listener_id = clb.lb_with_listener()
    base = {"LoadBalancerId": lb_id, "ListenerId": listener_id}
    clb.call(
        "BatchRegisterTargets",
        {"LoadBalancerId": lb_id, "Targets": [{"ListenerId": listener_id, **t} for t in _targets(2)]},
    )
    clb.call("ModifyTargetWeight", {**base, "Targets": _targets(2), "Weight": 0})
    clb.finish_tasks()
    assert set(_backends(clb, lb_id, listener_id).values()) == {0}
    assert (
        clb.error("ModifyTargetWeight", {**base, "Targets": _targets(1), "Weight": 101})
        == "InvalidParameterValue.Range"
    )
    unbound = {**base, "Targets": [{"EniIp": "127.9.9.9", "Port": 1}], "Weight": 5}
    assert clb.error("ModifyTargetWeight", unbound) == "InvalidParameter"


def test_batch_modify_target_weight_limits(clb: Harness) -> None:
    lb_id, listener_id = clb.lb_with_listener()
    clb.call(
        "BatchRegisterTargets",
        {"LoadBalancerId": lb_id, "Targets": [{"ListenerId": listener_id, **t} for t in _targets(51)]},
    )
    rule = {"ListenerId": listener_id, "Targets": _targets(1), "Weight": 7}
    clb.call("BatchModifyTargetWeight", {"LoadBalancerId": lb_id, "ModifyList": [rule]})
    clb.finish_tasks()
    assert _backends(clb, lb_id, listener_id)[("127.2.0.1", 8080)] == 7
    too_many_rules = {"LoadBalancerId": lb_id, "ModifyList": [rule] * 101}
    assert clb.error("BatchModifyTargetWeight", too_many_rules) == "InvalidParameterValue.Length"
    big_rule = {"LoadBalancerId": lb_id, "ModifyList": [{**rule, "Targets": _targets(51)}]}
    assert clb.error("BatchModifyTargetWeight", big_rule) == "InvalidParameterValue.Length"
    unknown = {"LoadBalancerId": lb_id, "ModifyList": [{**rule, "ListenerId": "lbl-missing0"}]}
    assert clb.error("BatchModifyTargetWeight", unknown) == "InvalidParameter.ListenerIdNotFound"


def test_describe_targets_filters_and_limits(clb: Harness) -> None:
    lb_id, listener_id = clb.lb_with_listener()
    clb.call(
        "BatchRegisterTargets",
        {"LoadBalancerId": lb_id, "Targets": [{"ListenerId": listener_id, **t} for t in _targets(3)]},
    )
    by_ip = clb.call(
        "DescribeTargets",
        {"LoadBalancerId": lb_id, "Filters": [{"Name": "private-ip-address", "Values": ["127.2.0.2"]}]},
    )
    assert [t.PrivateIpAddresses for t in by_ip.Listeners[0].Targets] == [["127.2.0.2"]]
    ids = [f"lbl-{i:08d}" for i in range(21)]
    assert clb.error("DescribeTargets", {"LoadBalancerId": lb_id, "ListenerIds": ids}) == "InvalidParameterValue.Length"


def test_describe_target_health_l4_shape_and_limits(clb: Harness) -> None:
    lb_id, listener_id = clb.lb_with_listener()
    clb.call(
        "BatchRegisterTargets",
        {"LoadBalancerId": lb_id, "Targets": [{"ListenerId": listener_id, **t} for t in _targets(2)]},
    )
    clb.model.set_target_health(lb_id, listener_id, "127.2.0.1", 8080, "Alive")
    health = clb.call("DescribeTargetHealth", {"LoadBalancerIds": [lb_id]}).LoadBalancers[0]
    listener = health.Listeners[0]
    assert (health.LoadBalancerId, listener.ListenerId, listener.Port) == (lb_id, listener_id, 80)
    targets = {(t.IP, t.HealthStatus, t.HealthStatusDetail) for rule in listener.Rules for t in rule.Targets}
    assert targets == {("127.2.0.1", True, "Alive"), ("127.2.0.2", False, "Unknown")}
    ids = [f"lb-{i:08d}" for i in range(31)]
    assert clb.error("DescribeTargetHealth", {"LoadBalancerIds": ids}) == "InvalidParameterValue.Length"
    assert clb.error("DescribeTargetHealth", {"LoadBalancerIds": ["lb-missing0"]}) == "InvalidParameter.LBIdNotFound"


def test_targets_on_listener_without_health_checks_are_close(clb: Harness) -> None:
    lb_id = clb.create_lb()
    listener_id = clb.create_listener(lb_id, 80, HealthCheck={"HealthSwitch": 0})
    clb.call(
        "BatchRegisterTargets", {"LoadBalancerId": lb_id, "Targets": [{"ListenerId": listener_id, **_targets(1)[0]}]}
    )
    rules = clb.call("DescribeTargetHealth", {"LoadBalancerIds": [lb_id]}).LoadBalancers[0].Listeners[0].Rules
    assert rules[0].Targets[0].HealthStatusDetail == "Close"
