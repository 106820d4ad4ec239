"""Contract: CLB instances, async tasks, the instance lock and rate limits, through the real SDK."""

from __future__ import annotations

from tests.contract.conftest import TASK_S, Harness


def test_create_load_balancer_reports_ids_and_turns_normal_after_the_task(clb: Harness) -> None:
    created = clb.call("CreateLoadBalancer", {"LoadBalancerType": "OPEN", "LoadBalancerName": "web"})
    lb_id = created.LoadBalancerIds[0]
    assert lb_id.startswith("lb-")
    described = clb.call("DescribeLoadBalancers", {"LoadBalancerIds": [lb_id]})
    assert described.TotalCount == 1
    assert described.LoadBalancerSet[0].Status == 0
    assert clb.call("DescribeTaskStatus", {"TaskId": created.RequestId}).Status == 2
    clb.finish_tasks()
    assert clb.call("DescribeTaskStatus", {"TaskId": created.RequestId}).Status == 0
    assert clb.call("DescribeTaskStatus", {"DealName": created.DealName}).LoadBalancerIds == [lb_id]
    lb = clb.call("DescribeLoadBalancers", {"LoadBalancerIds": [lb_id]}).LoadBalancerSet[0]
    assert (lb.Status, lb.LoadBalancerName, lb.LoadBalancerVips) == (1, "web", ["127.1.0.1"])


def test_vips_follow_creation_order(clb: Harness) -> None:
    first, second = clb.create_lb(), clb.create_lb()
    lbs = clb.call("DescribeLoadBalancers", {"LoadBalancerIds": [first, second]}).LoadBalancerSet
    assert {lb.LoadBalancerId: lb.LoadBalancerVips[0] for lb in lbs} == {first: "127.1.0.1", second: "127.1.0.2"}


def test_internal_load_balancer_needs_vpc_and_subnet(clb: Harness) -> None:
    assert clb.error("CreateLoadBalancer", {"LoadBalancerType": "INTERNAL", "VpcId": "vpc-1"}) == "MissingParameter"
    created = clb.call("CreateLoadBalancer", {"LoadBalancerType": "INTERNAL", "VpcId": "vpc-1", "SubnetId": "subnet-1"})
    assert len(created.LoadBalancerIds) == 1


def test_bad_type_and_missing_type_are_refused(clb: Harness) -> None:
    assert clb.error("CreateLoadBalancer", {}) == "MissingParameter"
    assert clb.error("CreateLoadBalancer", {"LoadBalancerType": "PUBLIC"}) == "InvalidParameterValue"


def test_client_token_makes_create_idempotent(clb: Harness) -> None:
    first = clb.call("CreateLoadBalancer", {"LoadBalancerType": "OPEN", "ClientToken": "tok-1"})
    again = clb.call("CreateLoadBalancer", {"LoadBalancerType": "OPEN", "ClientToken": "tok-1"})
    assert again.LoadBalancerIds == first.LoadBalancerIds
    assert clb.call("DescribeLoadBalancers", {}).TotalCount == 1
    clb.finish_tasks()
    assert clb.call("DescribeTaskStatus", {"TaskId": again.RequestId}).Status == 0


def test_more_than_twenty_tags_are_refused(clb: Harness) -> None:
    tags = [{"TagKey": f"k{i}", "TagValue": "v"} for i in range(21)]
    assert clb.error("CreateLoadBalancer", {"LoadBalancerType": "OPEN", "Tags": tags}) == "InvalidParameterValue.Length"


def test_describe_filters_by_tag_key_and_tag_value_with_paging(clb: Harness) -> None:
    owned = [clb.create_lb(Tags=[{"TagKey": "owner", "TagValue": "clb-direct"}]) for _ in range(3)]
    other = clb.create_lb(Tags=[{"TagKey": "owner", "TagValue": "someone"}])
    clb.create_lb()
    by_key = clb.call("DescribeLoadBalancers", {"Filters": [{"Name": "tag-key", "Values": ["owner"]}]})
    assert by_key.TotalCount == 4
    by_value = clb.call("DescribeLoadBalancers", {"Filters": [{"Name": "tag:owner", "Values": ["clb-direct"]}]})
    assert sorted(lb.LoadBalancerId for lb in by_value.LoadBalancerSet) == sorted(owned)
    page = clb.call(
        "DescribeLoadBalancers",
        {"Filters": [{"Name": "tag:owner", "Values": ["clb-direct", "someone"]}], "Offset": 2, "Limit": 2},
    )
    assert page.TotalCount == 4
    assert [lb.LoadBalancerId for lb in page.LoadBalancerSet] == [owned[2], other]
    bad = {"Filters": [{"Name": "no-such-filter", "Values": ["x"]}]}
    assert clb.error("DescribeLoadBalancers", bad) == "InvalidParameterValue.InvalidFilter"


def test_describe_and_delete_take_at_most_twenty_ids(clb: Harness) -> None:
    ids = [f"lb-{i:08d}" for i in range(21)]
    assert clb.error("DescribeLoadBalancers", {"LoadBalancerIds": ids}) == "InvalidParameterValue.Length"
    assert clb.error("DeleteLoadBalancer", {"LoadBalancerIds": ids}) == "InvalidParameterValue.Length"


def test_delete_load_balancer_is_async_and_unknown_ids_are_refused(clb: Harness) -> None:
    lb_id = clb.create_lb()
    assert clb.error("DeleteLoadBalancer", {"LoadBalancerIds": ["lb-missing0"]}) == "InvalidParameter.LBIdNotFound"
    deleted = clb.call("DeleteLoadBalancer", {"LoadBalancerIds": [lb_id]})
    assert clb.call("DescribeLoadBalancers", {"LoadBalancerIds": [lb_id]}).TotalCount == 1
    clb.finish_tasks()
    assert clb.call("DescribeTaskStatus", {"TaskId": deleted.RequestId}).Status == 0
    assert clb.call("DescribeLoadBalancers", {"LoadBalancerIds": [lb_id]}).TotalCount == 0


def test_delete_with_twenty_backends_needs_force(clb: Harness) -> None:
    lb_id, listener_id = clb.lb_with_listener()
    targets = [{"ListenerId": listener_id, "EniIp": f"127.2.0.{i + 1}", "Port": 8080} for i in range(20)]
    clb.call("BatchRegisterTargets", {"LoadBalancerId": lb_id, "Targets": targets})
    assert clb.error("DeleteLoadBalancer", {"LoadBalancerIds": [lb_id]}) == "FailedOperation.TargetNumCheckRisk"
    clb.call("DeleteLoadBalancer", {"LoadBalancerIds": [lb_id], "ForceDelete": True})


def test_writes_during_a_running_task_get_resource_in_operating(clb: Harness) -> None:
    lb_id = clb.create_lb()
    clb.call("CreateListener", {"LoadBalancerId": lb_id, "Ports": [80], "Protocol": "TCP"})
    code = clb.error("CreateListener", {"LoadBalancerId": lb_id, "Ports": [81], "Protocol": "TCP"})
    assert code == "FailedOperation.ResourceInOperating"
    assert clb.call("DescribeListeners", {"LoadBalancerId": lb_id}).TotalCount == 0
    clb.clock.advance(TASK_S)
    clb.call("CreateListener", {"LoadBalancerId": lb_id, "Ports": [81], "Protocol": "TCP"})


def test_task_that_failed_reports_status_one(clb: Harness) -> None:
    lb_id = clb.create_lb()
    clb.model.set_fault({"action": "CreateListener", "fail_task": True})
    created = clb.call("CreateListener", {"LoadBalancerId": lb_id, "Ports": [80], "Protocol": "TCP"})
    clb.finish_tasks()
    status = clb.call("DescribeTaskStatus", {"TaskId": created.RequestId})
    assert status.Status == 1 and status.Message
    assert clb.call("DescribeListeners", {"LoadBalancerId": lb_id}).TotalCount == 0


def test_more_than_twenty_requests_per_second_are_limited(clb: Harness) -> None:
    for _ in range(20):
        clb.call("DescribeLoadBalancers", {})
    assert clb.error("DescribeLoadBalancers", {}) == "RequestLimitExceeded"
    # The window is per action: another action still passes.
    clb.call("DescribeTaskStatus", {"TaskId": clb.call("CreateLoadBalancer", {"LoadBalancerType": "OPEN"}).RequestId})
    clb.clock.advance(1.0)
    clb.call("DescribeLoadBalancers", {})


def test_unknown_task_is_refused(clb: Harness) -> None:
    assert clb.error("DescribeTaskStatus", {"TaskId": "no-such-task"}) == "InvalidParameter"
