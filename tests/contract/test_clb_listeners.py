"""Contract: listener creation, validation, modification and deletion through the real SDK."""

from __future__ import annotations

import pytest

from tests.contract.conftest import Harness


def test_create_describe_modify_delete_listener(clb: Harness) -> None:
    lb_id = clb.create_lb()
    health = {"HealthSwitch": 1, "TimeOut": 3, "IntervalTime": 10, "HealthNum": 2, "UnHealthNum": 4}
    created = clb.call(
        "CreateListener",
        {
            "LoadBalancerId": lb_id,
            "Ports": [80, 443],
            "Protocol": "TCP",
            "ListenerNames": ["http", "https"],
            "HealthCheck": health,
            "Scheduler": "LEAST_CONN",
            "SessionExpireTime": 30,
        },
    )
    assert len(created.ListenerIds) == 2
    clb.finish_tasks()
    listeners = clb.call("DescribeListeners", {"LoadBalancerId": lb_id}).Listeners
    assert [(item.Port, item.ListenerName, item.Scheduler) for item in listeners] == [
        (80, "http", "LEAST_CONN"),
        (443, "https", "LEAST_CONN"),
    ]
    assert (listeners[0].HealthCheck.TimeOut, listeners[0].HealthCheck.IntervalTime) == (3, 10)
    assert listeners[0].HealthCheck.CheckType == "TCP"
    first = created.ListenerIds[0]
    clb.call("ModifyListener", {"LoadBalancerId": lb_id, "ListenerId": first, "Scheduler": "IP_HASH"})
    clb.finish_tasks()
    only = clb.call("DescribeListeners", {"LoadBalancerId": lb_id, "ListenerIds": [first]})
    assert (only.TotalCount, only.Listeners[0].Scheduler) == (1, "IP_HASH")
    clb.call("DeleteListener", {"LoadBalancerId": lb_id, "ListenerId": first})
    clb.finish_tasks()
    assert [item.ListenerId for item in clb.call("DescribeListeners", {"LoadBalancerId": lb_id}).Listeners] == [
        created.ListenerIds[1]
    ]


def test_fifty_ports_in_one_call_are_refused(clb: Harness) -> None:
    lb_id = clb.create_lb()
    payload = {"LoadBalancerId": lb_id, "Ports": list(range(1000, 1050)), "Protocol": "TCP"}
    assert clb.error("CreateListener", payload) == "InvalidParameterValue.Length"
    payload["Ports"] = list(range(1000, 1049))
    assert len(clb.call("CreateListener", payload).ListenerIds) == 49


def test_port_conflicts_are_refused_but_tcp_and_udp_may_share_a_port(clb: Harness) -> None:
    lb_id = clb.create_lb()
    clb.create_listener(lb_id, 80, "TCP")
    conflict = {"LoadBalancerId": lb_id, "Ports": [80], "Protocol": "TCP"}
    assert clb.error("CreateListener", conflict) == "InvalidParameter.PortCheckFailed"
    repeated = {"LoadBalancerId": lb_id, "Ports": [81, 81], "Protocol": "TCP"}
    assert clb.error("CreateListener", repeated) == "InvalidParameter.PortCheckFailed"
    clb.create_listener(lb_id, 80, "UDP")


@pytest.mark.parametrize(
    ("health", "code"),
    [
        ({"TimeOut": 5, "IntervalTime": 5}, "InvalidParameterValue.Range"),
        ({"TimeOut": 1}, "InvalidParameterValue.Range"),
        ({"IntervalTime": 301}, "InvalidParameterValue.Range"),
        ({"HealthNum": 11}, "InvalidParameterValue.Range"),
        ({"UnHealthNum": 1}, "InvalidParameterValue.Range"),
        ({"HttpCode": 32}, "InvalidParameterValue.Range"),
        ({"CheckType": "PING"}, "InvalidParameterValue"),
        ({"CheckType": "HTTP", "HttpCheckPath": "/healthz"}, "MissingParameter"),
    ],
)
def test_health_check_validation(clb: Harness, health: dict[str, object], code: str) -> None:
    lb_id = clb.create_lb()
    payload = {"LoadBalancerId": lb_id, "Ports": [80], "Protocol": "TCP", "HealthCheck": health}
    assert clb.error("CreateListener", payload) == code


@pytest.mark.parametrize(("session", "ok"), [(0, True), (30, True), (3600, True), (10, False), (3601, False)])
def test_session_expire_time_is_zero_or_30_to_3600(clb: Harness, session: int, ok: bool) -> None:
    lb_id = clb.create_lb()
    payload = {"LoadBalancerId": lb_id, "Ports": [80], "Protocol": "TCP", "SessionExpireTime": session}
    if ok:
        clb.call("CreateListener", payload)
    else:
        assert clb.error("CreateListener", payload) == "InvalidParameterValue.Range"


def test_scheduler_and_protocol_are_checked(clb: Harness) -> None:
    lb_id = clb.create_lb()
    bad_scheduler = {"LoadBalancerId": lb_id, "Ports": [80], "Protocol": "TCP", "Scheduler": "IP_HASH"}
    assert clb.error("CreateListener", bad_scheduler) == "InvalidParameterValue"
    bad_protocol = {"LoadBalancerId": lb_id, "Ports": [80], "Protocol": "SCTP"}
    assert clb.error("CreateListener", bad_protocol) == "InvalidParameter.ProtocolCheckFailed"


def test_unknown_listener_and_load_balancer(clb: Harness) -> None:
    lb_id = clb.create_lb()
    modify = {"LoadBalancerId": lb_id, "ListenerId": "lbl-missing0", "Scheduler": "WRR"}
    assert clb.error("ModifyListener", modify) == "InvalidParameter.ListenerIdNotFound"
    assert clb.error("DeleteListener", {"LoadBalancerId": lb_id, "ListenerId": "lbl-missing0"}) == (
        "InvalidParameter.ListenerIdNotFound"
    )
    assert clb.error("DescribeListeners", {"LoadBalancerId": "lb-missing0"}) == "InvalidParameter.LBIdNotFound"


def test_turning_health_checks_off_reports_close_and_on_reports_unknown(clb: Harness) -> None:
    lb_id, listener_id = clb.lb_with_listener()
    clb.call(
        "RegisterTargets",
        {"LoadBalancerId": lb_id, "ListenerId": listener_id, "Targets": [{"EniIp": "127.2.0.1", "Port": 80}]},
    )
    clb.finish_tasks()

    def detail() -> str:
        health = clb.call("DescribeTargetHealth", {"LoadBalancerIds": [lb_id]})
        return str(health.LoadBalancers[0].Listeners[0].Rules[0].Targets[0].HealthStatusDetail)

    assert detail() == "Unknown"
    off = {"LoadBalancerId": lb_id, "ListenerId": listener_id, "HealthCheck": {"HealthSwitch": 0}}
    clb.call("ModifyListener", off)
    clb.finish_tasks()
    assert detail() == "Close"
    off["HealthCheck"] = {"HealthSwitch": 1}
    clb.call("ModifyListener", off)
    clb.finish_tasks()
    assert detail() == "Unknown"
