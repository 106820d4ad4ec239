"""TkeServiceConfig parsing and listener planning."""

from __future__ import annotations

import pytest

from shared.domain.errors import ConfigError
from shared.domain.listeners import (
    desired_listeners,
    listener_name,
    listeners_for_service,
    plan_listeners,
)
from shared.domain.models import HealthCheck, Listener, ServiceInfo, ServicePort
from shared.domain.tke_service_config import parse_tke_service_config


def svc(*ports: ServicePort) -> ServiceInfo:
    return ServiceInfo(
        namespace="ns", name="web", uid="u1", type="LoadBalancer", selector={"app": "web"}, ports=list(ports)
    )


CONFIG = {
    "apiVersion": "cloud.tencent.com/v1alpha1",
    "kind": "TkeServiceConfig",
    "metadata": {"name": "web-clb"},
    "spec": {
        "loadBalancer": {
            "l4Listeners": [
                {
                    "protocol": "TCP",
                    "port": 80,
                    "deregisterTargetRst": True,
                    "scheduler": "LEAST_CONN",
                    "session": {"enable": True, "sessionExpireTime": 60},
                    "healthCheck": {
                        "enable": True,
                        "intervalTime": 10,
                        "timeout": 3,
                        "healthNum": 2,
                        "unHealthNum": 4,
                        "futureField": 1,
                    },
                }
            ]
        }
    },
}


def test_config_applies_to_matching_listener_only() -> None:
    cfg = parse_tke_service_config(CONFIG, name="web-clb")
    specs = desired_listeners(svc(ServicePort(port=80), ServicePort(port=53, protocol="UDP")), cfg)
    by_port = {s.port: s for s in specs}
    tcp = by_port[80]
    assert tcp.scheduler == "LEAST_CONN" and tcp.deregister_target_rst and tcp.session_expire_s == 60
    assert tcp.health_check == HealthCheck(interval_s=10, timeout_s=3, healthy_threshold=2, unhealthy_threshold=4)
    udp = by_port[53]
    assert udp.protocol == "UDP" and udp.scheduler == "WRR" and udp.health_check == HealthCheck(check_type="PING")
    assert udp.name == listener_name("ns", "web", "UDP", 53)


def test_legacy_enabled_spelling_and_session_off() -> None:
    obj = {
        "spec": {
            "loadBalancer": {
                "l4Listeners": [
                    {"protocol": "TCP", "port": 80, "healthCheck": {"enabled": False}, "session": {"enable": False}}
                ]
            }
        }
    }
    cfg = parse_tke_service_config(obj, name="x")
    spec = desired_listeners(svc(ServicePort(port=80)), cfg)[0]
    assert spec.health_check is not None and spec.health_check.enabled is False
    assert spec.session_expire_s == 0


@pytest.mark.parametrize(
    ("listener", "needle"),
    [
        ({"protocol": "TCP", "port": 80, "healthCheck": {"intervalTime": 5, "timeout": 5}}, "less than intervalTime"),
        ({"protocol": "SCTP", "port": 80}, "protocol"),
        ({"protocol": "TCP", "port": 0}, "port"),
        ({"protocol": "TCP", "port": 80, "session": {"enable": True, "sessionExpireTime": 5}}, "sessionExpireTime"),
    ],
)
def test_invalid_config_names_the_problem(listener: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_tke_service_config({"spec": {"loadBalancer": {"l4Listeners": [listener]}}}, name="bad")
    assert "'bad'" in err.value.message and needle in err.value.message


def test_duplicate_entries_rejected() -> None:
    entry = {"protocol": "TCP", "port": 80}
    with pytest.raises(ConfigError, match="twice"):
        parse_tke_service_config({"spec": {"loadBalancer": {"l4Listeners": [entry, entry]}}}, name="dup")


def test_duplicate_service_ports_give_one_listener() -> None:
    specs = desired_listeners(
        svc(ServicePort(name="a", port=80, target_port=8080), ServicePort(name="b", port=80, target_port=9090)), None
    )
    assert len(specs) == 1


def listener(port: int, lid: str, *, name: str | None = None, protocol: str = "TCP", **kw: object) -> Listener:
    return Listener(listener_id=lid, port=port, protocol=protocol, name=name, **kw)  # type: ignore[arg-type]


def test_plan_creates_updates_and_deletes_only_owned() -> None:
    desired = desired_listeners(svc(ServicePort(port=80), ServicePort(port=443)), None)
    actual = [
        listener(80, "lbl-80", health_check=HealthCheck(interval_s=9), scheduler="LEAST_CONN"),
        listener(8080, "lbl-own", name=listener_name("ns", "web", "TCP", 8080)),
        listener(9090, "lbl-foreign", name="someone-else"),
    ]
    plan = plan_listeners(desired, actual, namespace="ns", service="web", owns_lb=False)
    assert [s.port for s in plan.create] == [443]
    # adopted CLB: the unnamed listener on port 80 is someone else's, a conflict, never written
    assert plan.update == [] and [(s.port, lst.listener_id) for s, lst in plan.conflicts] == [(80, "lbl-80")]
    assert [lst.listener_id for lst in plan.delete] == ["lbl-own"]
    owned = plan_listeners(desired, actual, namespace="ns", service="web", owns_lb=True)
    assert [(lst.listener_id, diffs) for lst, _, diffs in owned.update] == [("lbl-80", ["scheduler"])]
    assert {lst.listener_id for lst in owned.delete} == {"lbl-own", "lbl-foreign"} and owned.conflicts == []


def test_plan_is_noop_when_converged_and_detects_health_drift() -> None:
    cfg = parse_tke_service_config(CONFIG, name="c")
    desired = desired_listeners(svc(ServicePort(port=80)), cfg)
    live = listener(
        80,
        "l1",
        health_check=HealthCheck(interval_s=10, timeout_s=3, healthy_threshold=2, unhealthy_threshold=4, http_codes=31),
        scheduler="LEAST_CONN",
        session_expire_s=60,
        deregister_target_rst=True,
    )
    assert plan_listeners(desired, [live], namespace="ns", service="web", owns_lb=True).is_noop
    drifted = live.model_copy(update={"health_check": HealthCheck(interval_s=5)})
    plan = plan_listeners(desired, [drifted], namespace="ns", service="web", owns_lb=True)
    assert "health_check.interval_s" in plan.update[0][2]


def test_listeners_for_service_maps_ports() -> None:
    service = svc(ServicePort(port=80), ServicePort(port=81))
    pairs = listeners_for_service(service, [listener(80, "l80")])
    assert [(p.port, lst.listener_id if lst else None) for p, lst in pairs] == [(80, "l80"), (81, None)]
