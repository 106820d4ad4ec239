"""TencentClbGateway over the real SDK against a scripted CLB stub: requests sent, chunking, task waits."""

from __future__ import annotations

from typing import Any

import pytest

from shared.adapters.tencent_clb import TencentClbGateway
from shared.domain.errors import PermanentError, RetryableError
from shared.domain.models import HealthCheck, ListenerSpec, LoadBalancerSpec, Target
from tests.unit.adapters.clb_stub import ClbStub


def lb_row(lb_id: str, status: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "LoadBalancerId": lb_id,
        "LoadBalancerName": "web",
        "LoadBalancerType": "INTERNAL",
        "LoadBalancerVips": ["10.0.0.9"],
        "Status": status,
        "Tags": [{"TagKey": "tke-clusterId", "TagValue": "cls-1"}],
        **extra,
    }


def targets(n: int, listener_id: str = "lbl-1", weight: int = 10) -> list[Target]:
    return [
        Target(listener_id=listener_id, ip=f"10.1.{i // 250}.{i % 250}", port=8080, weight=weight) for i in range(n)
    ]


# ------------------------------------------------------------------------------------------ load balancers


def test_create_internal_lb_sends_vpc_subnet_token_tags_and_waits_for_status_1(
    gateway: TencentClbGateway, clb_stub: ClbStub
) -> None:
    clb_stub.on("CreateLoadBalancer", {"LoadBalancerIds": ["lb-1"]})
    statuses = iter([0, 0, 1])
    clb_stub.on(
        "DescribeLoadBalancers", lambda p: {"TotalCount": 1, "LoadBalancerSet": [lb_row("lb-1", next(statuses))]}
    )

    info = gateway.create_load_balancer(
        LoadBalancerSpec(
            name="default-web",
            internal_subnet_id="subnet-1",
            vpc_id="vpc-1",
            tags={"tke-clusterId": "cls-1"},
            client_token="tok-1",
        )
    )

    sent = clb_stub.actions("CreateLoadBalancer")[0].params
    assert sent == {
        "LoadBalancerType": "INTERNAL",
        "Forward": 1,
        "LoadBalancerName": "default-web",
        "VpcId": "vpc-1",
        "SubnetId": "subnet-1",
        "ClientToken": "tok-1",
        "Tags": [{"TagKey": "tke-clusterId", "TagValue": "cls-1"}],
    }
    assert info.lb_id == "lb-1" and info.status == 1 and info.internal and info.vips == ["10.0.0.9"]
    assert len(clb_stub.actions("DescribeLoadBalancers")) == 3


def test_create_lb_without_ids_reads_them_from_the_task(gateway: TencentClbGateway, clb_stub: ClbStub) -> None:
    clb_stub.on("CreateLoadBalancer", {"LoadBalancerIds": []})
    clb_stub.on("DescribeTaskStatus", {"Status": 0, "LoadBalancerIds": ["lb-7"]})
    clb_stub.on("DescribeLoadBalancers", {"TotalCount": 1, "LoadBalancerSet": [lb_row("lb-7")]})

    info = gateway.create_load_balancer(LoadBalancerSpec(name="open"))

    assert info.lb_id == "lb-7"
    assert clb_stub.actions("CreateLoadBalancer")[0].params["LoadBalancerType"] == "OPEN"
    assert clb_stub.actions("DescribeTaskStatus")[0].params == {"TaskId": "req-1"}


def test_create_internal_lb_without_any_vpc_is_refused_before_calling(
    gateway: TencentClbGateway, clb_stub: ClbStub
) -> None:
    with pytest.raises(PermanentError, match="VPC"):
        gateway.create_load_balancer(LoadBalancerSpec(name="x", internal_subnet_id="subnet-1"))
    assert clb_stub.calls == []


def test_create_lb_that_never_becomes_ready_is_retryable(gateway: TencentClbGateway, clb_stub: ClbStub) -> None:
    clb_stub.on("CreateLoadBalancer", {"LoadBalancerIds": ["lb-1"]})
    clb_stub.on("DescribeLoadBalancers", {"TotalCount": 1, "LoadBalancerSet": [lb_row("lb-1", 0)]})
    with pytest.raises(RetryableError, match="lb-1 not ready"):
        gateway.create_load_balancer(LoadBalancerSpec(name="x"))


def test_describe_lb_found_missing_and_unknown_id(gateway: TencentClbGateway, clb_stub: ClbStub) -> None:
    clb_stub.on("DescribeLoadBalancers", {"TotalCount": 1, "LoadBalancerSet": [lb_row("lb-1")]})
    assert gateway.describe_load_balancer("lb-1") is not None
    assert clb_stub.actions()[-1].params == {"LoadBalancerIds": ["lb-1"]}
    clb_stub.on("DescribeLoadBalancers", {"TotalCount": 0, "LoadBalancerSet": []})
    assert gateway.describe_load_balancer("lb-2") is None
    clb_stub.fail("DescribeLoadBalancers", "InvalidParameter.LBIdNotFound", "LoadBalancer not exist")
    assert gateway.describe_load_balancer("lb-3") is None


def test_find_by_tags_uses_tag_filters_pages_and_rechecks_tags(gateway: TencentClbGateway, clb_stub: ClbStub) -> None:
    rows = [lb_row(f"lb-{i}") for i in range(150)] + [lb_row("lb-other", Tags=[])]

    def describe(params: dict[str, Any]) -> dict[str, Any]:
        page = rows[params["Offset"] : params["Offset"] + params["Limit"]]
        return {"TotalCount": len(rows), "LoadBalancerSet": page}

    clb_stub.on("DescribeLoadBalancers", describe)
    found = gateway.find_load_balancers({"tke-clusterId": "cls-1"})
    assert len(found) == 150
    calls = clb_stub.actions("DescribeLoadBalancers")
    assert [c.params["Offset"] for c in calls] == [0, 100]
    assert calls[0].params["Filters"] == [{"Name": "tag:tke-clusterId", "Values": ["cls-1"]}]


def test_delete_lb_waits_and_tolerates_absence_without_force(gateway: TencentClbGateway, clb_stub: ClbStub) -> None:
    clb_stub.on("DeleteLoadBalancer", {})
    gateway.delete_load_balancer("lb-1")
    assert clb_stub.actions("DeleteLoadBalancer")[0].params == {"LoadBalancerIds": ["lb-1"]}
    assert clb_stub.actions("DescribeTaskStatus")[0].params == {"TaskId": "req-1"}
    clb_stub.fail("DeleteLoadBalancer", "InvalidParameter.LBIdNotFound")
    gateway.delete_load_balancer("lb-1")


@pytest.mark.parametrize("guard", ["FailedOperation.TargetNumCheckRisk", "FailedOperation.TrafficCheckRisk"])
def test_delete_lb_forces_only_past_the_backend_guard(
    gateway: TencentClbGateway, clb_stub: ClbStub, guard: str
) -> None:
    clb_stub.on("DeleteLoadBalancer", {})
    clb_stub.fail("DeleteLoadBalancer", guard)
    gateway.delete_load_balancer("lb-1")
    assert [c.params for c in clb_stub.actions("DeleteLoadBalancer")] == [
        {"LoadBalancerIds": ["lb-1"]},
        {"LoadBalancerIds": ["lb-1"], "ForceDelete": True},
    ]


def test_delete_lb_other_refusals_are_not_forced(gateway: TencentClbGateway, clb_stub: ClbStub) -> None:
    clb_stub.fail("DeleteLoadBalancer", "OperationDenied")
    with pytest.raises(PermanentError):
        gateway.delete_load_balancer("lb-1")
    assert len(clb_stub.actions("DeleteLoadBalancer")) == 1


# ------------------------------------------------------------------------------------------ listeners


def test_list_listeners_maps_fields_and_skips_foreign_kinds(gateway: TencentClbGateway, clb_stub: ClbStub) -> None:
    clb_stub.on(
        "DescribeListeners",
        {
            "Listeners": [
                {
                    "ListenerId": "lbl-1",
                    "Protocol": "TCP",
                    "Port": 80,
                    "ListenerName": "tcp-80",
                    "Scheduler": "LEAST_CONN",
                    "SessionExpireTime": 30,
                    "DeregisterTargetRst": True,
                    "HealthCheck": {
                        "HealthSwitch": 1,
                        "TimeOut": 2,
                        "IntervalTime": 5,
                        "HealthNum": 2,
                        "UnHealthNum": 3,
                        "CheckType": "HTTP",
                        "HttpCheckPath": "/healthz",
                        "CheckPort": -1,
                    },
                },
                {"ListenerId": "lbl-2", "Protocol": "TCP_SSL", "Port": 443},
            ],
            "TotalCount": 2,
        },
    )
    (listener,) = gateway.list_listeners("lb-1")
    assert listener.listener_id == "lbl-1" and listener.port == 80 and listener.scheduler == "LEAST_CONN"
    assert listener.session_expire_s == 30 and listener.deregister_target_rst and listener.name == "tcp-80"
    assert listener.health_check == HealthCheck(
        check_type="HTTP", interval_s=5, timeout_s=2, healthy_threshold=2, unhealthy_threshold=3, http_path="/healthz"
    )


def test_create_listener_maps_spec_and_waits_for_task(gateway: TencentClbGateway, clb_stub: ClbStub) -> None:
    clb_stub.on("CreateListener", {"ListenerIds": ["lbl-9"]})
    spec = ListenerSpec(
        port=80,
        protocol="TCP",
        name="tcp-80",
        session_expire_s=60,
        scheduler="LEAST_CONN",
        deregister_target_rst=True,
        health_check=HealthCheck(interval_s=10, healthy_threshold=2, check_port=81),
    )
    assert gateway.create_listener("lb-1", spec) == "lbl-9"
    assert clb_stub.actions("CreateListener")[0].params == {
        "LoadBalancerId": "lb-1",
        "Ports": [80],
        "Protocol": "TCP",
        "ListenerNames": ["tcp-80"],
        "SessionExpireTime": 60,
        "Scheduler": "LEAST_CONN",
        "DeregisterTargetRst": True,
        "HealthCheck": {
            "HealthSwitch": 1,
            "TimeOut": 2,
            "IntervalTime": 10,
            "HealthNum": 2,
            "UnHealthNum": 3,
            "CheckType": "TCP",
            "CheckPort": 81,
        },
    }
    assert [c.action for c in clb_stub.calls] == ["CreateListener", "DescribeTaskStatus"]


def test_create_listener_with_ip_hash_modifies_after_create(gateway: TencentClbGateway, clb_stub: ClbStub) -> None:
    clb_stub.on("CreateListener", {"ListenerIds": ["lbl-9"]})
    clb_stub.on("ModifyListener", {})
    gateway.create_listener("lb-1", ListenerSpec(port=80, scheduler="IP_HASH"))
    assert "Scheduler" not in clb_stub.actions("CreateListener")[0].params
    assert clb_stub.actions("ModifyListener")[0].params["Scheduler"] == "IP_HASH"


def test_create_listener_after_lost_response_adopts_own_listener(gateway: TencentClbGateway, clb_stub: ClbStub) -> None:
    clb_stub.fail("CreateListener", "DROP")
    clb_stub.fail("CreateListener", "InvalidParameter.PortCheckFailed", "port 80 is in use")
    clb_stub.on("DescribeListeners", {"Listeners": [{"ListenerId": "lbl-5", "Protocol": "TCP", "Port": 80}]})
    assert gateway.create_listener("lb-1", ListenerSpec(port=80)) == "lbl-5"


def test_create_listener_port_taken_by_other_protocol_is_permanent(
    gateway: TencentClbGateway, clb_stub: ClbStub
) -> None:
    clb_stub.fail("CreateListener", "InvalidParameter.PortCheckFailed", "port 80 is in use")
    clb_stub.on("DescribeListeners", {"Listeners": [{"ListenerId": "lbl-5", "Protocol": "UDP", "Port": 80}]})
    with pytest.raises(PermanentError, match=r"PortCheckFailed.*req-1"):
        gateway.create_listener("lb-1", ListenerSpec(port=80))


def test_modify_and_delete_listener(gateway: TencentClbGateway, clb_stub: ClbStub) -> None:
    clb_stub.on("ModifyListener", {})
    clb_stub.on("DeleteListener", {})
    gateway.modify_listener("lb-1", "lbl-1", ListenerSpec(port=80, name="n", health_check=HealthCheck(enabled=False)))
    sent = clb_stub.actions("ModifyListener")[0].params
    assert sent["ListenerId"] == "lbl-1" and sent["ListenerName"] == "n" and sent["HealthCheck"]["HealthSwitch"] == 0
    gateway.delete_listener("lb-1", "lbl-1")
    assert clb_stub.actions("DeleteListener")[0].params == {"LoadBalancerId": "lb-1", "ListenerId": "lbl-1"}
    assert len(clb_stub.actions("DescribeTaskStatus")) == 2
    clb_stub.fail("DeleteListener", "InvalidParameter.ListenerIdNotFound")
    gateway.delete_listener("lb-1", "lbl-1")


# ------------------------------------------------------------------------------------------ targets


def test_register_1200_targets_takes_three_batch_calls(gateway: TencentClbGateway, clb_stub: ClbStub) -> None:
    clb_stub.on("BatchRegisterTargets", {"FailListenerIdSet": []})
    gateway.register_targets("lb-1", targets(1200))
    calls = clb_stub.actions("BatchRegisterTargets")
    assert [len(c.params["Targets"]) for c in calls] == [500, 500, 200]
    assert calls[0].params["Targets"][0] == {"ListenerId": "lbl-1", "EniIp": "10.1.0.0", "Port": 8080, "Weight": 10}
    assert clb_stub.actions("DescribeTaskStatus") == []


def test_deregister_chunks_and_reports_failed_listeners(gateway: TencentClbGateway, clb_stub: ClbStub) -> None:
    clb_stub.on("BatchDeregisterTargets", {"FailListenerIdSet": ["lbl-2", "lbl-2"], "Message": "listener gone"})
    with pytest.raises(
        PermanentError,
        match=r"BatchDeregisterTargets on lb-1 failed for listeners lbl-2: listener gone \(RequestId req-1\)",
    ):
        gateway.deregister_targets("lb-1", targets(3, "lbl-2"))


def test_600_weight_changes_take_two_calls_within_rule_limits(gateway: TencentClbGateway, clb_stub: ClbStub) -> None:
    clb_stub.on("BatchModifyTargetWeight", {})
    gateway.set_target_weights("lb-1", targets(600, weight=0))
    calls = clb_stub.actions("BatchModifyTargetWeight")
    assert len(calls) == 2
    for call in calls:
        rules = call.params["ModifyList"]
        assert len(rules) <= 100 and all(len(r["Targets"]) <= 50 for r in rules)
        assert sum(len(r["Targets"]) for r in rules) <= 500
    assert sum(len(r["Targets"]) for c in calls for r in c.params["ModifyList"]) == 600
    assert calls[0].params["ModifyList"][0]["Targets"][0] == {"EniIp": "10.1.0.0", "Port": 8080, "Weight": 0}
    assert len(clb_stub.actions("DescribeTaskStatus")) == 2


def test_list_targets_asks_20_listeners_per_call_and_matches_first_private_ip(
    gateway: TencentClbGateway, clb_stub: ClbStub
) -> None:
    clb_stub.on(
        "DescribeListeners",
        {"Listeners": [{"ListenerId": f"lbl-{i}", "Protocol": "TCP", "Port": 1000 + i} for i in range(25)]},
    )

    def describe_targets(params: dict[str, Any]) -> dict[str, Any]:
        return {
            "Listeners": [
                {
                    "ListenerId": lid,
                    "Protocol": "TCP",
                    "Port": 80,
                    "Targets": [
                        {"Type": "ENI", "Port": 8080, "Weight": 7, "PrivateIpAddresses": ["10.1.0.1", "10.9.9.9"]},
                        {"Type": "ENI", "Port": 8080, "PrivateIpAddresses": []},
                    ],
                    "Rules": [
                        {
                            "LocationId": "loc-1",
                            "Targets": [{"Port": 9090, "Weight": 0, "PrivateIpAddresses": ["10.1.0.2"]}],
                        }
                    ],
                }
                for lid in params["ListenerIds"]
            ]
        }

    clb_stub.on("DescribeTargets", describe_targets)
    found = gateway.list_targets("lb-1")
    assert [len(c.params["ListenerIds"]) for c in clb_stub.actions("DescribeTargets")] == [20, 5]
    assert len(found) == 50
    assert found[0] == Target(listener_id="lbl-0", ip="10.1.0.1", port=8080, weight=7)
    assert found[1] == Target(listener_id="lbl-0", ip="10.1.0.2", port=9090, weight=0)


def test_target_health_asks_30_lbs_per_call_and_walks_rules(gateway: TencentClbGateway, clb_stub: ClbStub) -> None:
    def health(params: dict[str, Any]) -> dict[str, Any]:
        return {
            "LoadBalancers": [
                {
                    "LoadBalancerId": lb,
                    "Listeners": [
                        {
                            "ListenerId": "lbl-1",
                            "Protocol": "TCP",
                            "Port": 80,
                            "Rules": [
                                {
                                    "Targets": [
                                        {
                                            "IP": "10.1.0.1",
                                            "Port": 8080,
                                            "HealthStatus": True,
                                            "HealthStatusDetail": "Alive",
                                            "Weight": 10,
                                        },
                                        {
                                            "IP": "10.1.0.2",
                                            "Port": 8080,
                                            "HealthStatus": False,
                                            "HealthStatusDetial": "Dead",
                                        },
                                    ]
                                }
                            ],
                        }
                    ],
                }
                for lb in params["LoadBalancerIds"]
            ]
        }

    clb_stub.on("DescribeTargetHealth", health)
    lb_ids = [f"lb-{i}" for i in range(31)]
    result = gateway.describe_target_health([*lb_ids, "lb-0"])
    assert [len(c.params["LoadBalancerIds"]) for c in clb_stub.actions("DescribeTargetHealth")] == [30, 1]
    assert set(result) == set(lb_ids)
    alive, dead = result["lb-3"]
    assert alive.healthy and alive.detail == "Alive" and alive.weight == 10
    assert not dead.healthy and dead.detail == "Dead" and dead.weight is None


# ------------------------------------------------------------------------------------------ async tasks


def test_task_still_running_is_polled_until_done(gateway: TencentClbGateway, clb_stub: ClbStub, clock: Any) -> None:
    statuses = iter([2, 2, 0])
    clb_stub.on("DescribeTaskStatus", lambda p: {"Status": next(statuses)})
    clb_stub.on("ModifyListener", {})
    gateway.modify_listener("lb-1", "lbl-1", ListenerSpec(port=80))
    assert len(clb_stub.actions("DescribeTaskStatus")) == 3
    assert len(clock.sleeps) == 2


def test_failed_task_is_retryable_with_action_task_and_message(gateway: TencentClbGateway, clb_stub: ClbStub) -> None:
    clb_stub.on("DescribeTaskStatus", {"Status": 1, "Message": "backend quota exceeded"})
    clb_stub.on("BatchModifyTargetWeight", {})
    with pytest.raises(
        RetryableError,
        match=r"BatchModifyTargetWeight on lb-1 failed asynchronously \(task req-1\): backend quota exceeded",
    ) as failed:
        gateway.set_target_weights("lb-1", targets(1))
    assert failed.value.code == "TaskFailed"


def test_task_running_past_timeout_is_retryable(gateway: TencentClbGateway, clb_stub: ClbStub) -> None:
    clb_stub.on("DescribeTaskStatus", {"Status": 2})
    clb_stub.on("DeleteListener", {})
    with pytest.raises(RetryableError, match="still running") as info:
        gateway.delete_listener("lb-1", "lbl-1")
    assert info.value.code == "TaskTimeout"
