"""TencentClbGateway through the real SDK against the CLB emulator model (`clb_fake`, `responses`).

The model's call log counts the API calls; faults come from the emulator's injector; the model's clock
is the gateway's fake clock, so task durations, lock waits and backoff sleeps all run instantly.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest

from emulators.clb.config import ClbEmulatorConfig
from emulators.clb.model import ClbModel
from emulators.clb.responses_transport import clb_fake
from shared.adapters.clb_errors import RetryPolicy
from shared.adapters.tencent_clb import TencentClbGateway, build_clb_client
from shared.clock import FakeClock
from shared.config import Settings
from shared.domain.errors import LimitExceeded, NotFound, PermanentError, RetryableError
from shared.domain.models import HealthCheck, ListenerSpec, LoadBalancerSpec, Target

TAGS = {"tke-clusterId": "cls-f", "clb-direct-service": "default/web"}


class Rig:
    def __init__(self, model: ClbModel, gateway: TencentClbGateway, clock: FakeClock) -> None:
        self.model, self.gateway, self.clock = model, gateway, clock

    def count(self, action: str) -> int:
        return int(self.model.calls()["counts"].get(action, 0))

    def codes(self, action: str) -> list[str | None]:
        return [c["error_code"] for c in self.model.calls()["calls"] if c["action"] == action]

    def lb_with_listener(self) -> tuple[str, str]:
        lb = self.gateway.create_load_balancer(
            LoadBalancerSpec(name="web", internal_subnet_id="subnet-1", tags=TAGS, client_token="tok-web")
        )
        return lb.lb_id, self.gateway.create_listener(lb.lb_id, ListenerSpec(port=80))


@pytest.fixture
def rig() -> Iterator[Rig]:
    clock = FakeClock()
    config = ClbEmulatorConfig(task_duration_s=0.5, backend_quota=5000)
    with clb_fake(config=config, clock=clock.monotonic, wall_clock=clock.now, sleep=clock.sleep) as (model, endpoint):
        settings = Settings.load(
            {}, clb_endpoint=endpoint, secret_id="AKIDfunctional", secret_key="functional-key", vpc_id="vpc-1"
        )
        gateway = TencentClbGateway(
            build_clb_client(settings),
            region=settings.region,
            clock=clock,
            retry=RetryPolicy(deadline_s=20.0, rng=random.Random(5)),
            task_timeout_s=30.0,
            default_vpc_id="vpc-1",
        )
        yield Rig(model, gateway, clock)


def pods(n: int, listener_id: str, weight: int = 10) -> list[Target]:
    return [
        Target(listener_id=listener_id, ip=f"10.2.{i // 200}.{i % 200 + 1}", port=8080, weight=weight) for i in range(n)
    ]


def test_lifecycle_create_find_listen_bind_weigh_unbind_delete(rig: Rig) -> None:
    gw = rig.gateway
    lb = gw.create_load_balancer(
        LoadBalancerSpec(name="web", internal_subnet_id="subnet-1", tags=TAGS, client_token="tok-web")
    )
    assert lb.status == 1 and lb.internal and lb.vips and lb.tags == TAGS
    again = gw.create_load_balancer(
        LoadBalancerSpec(name="web", internal_subnet_id="subnet-1", tags=TAGS, client_token="tok-web")
    )
    assert again.lb_id == lb.lb_id  # ClientToken: a retried create adopts the first CLB
    assert [found.lb_id for found in gw.find_load_balancers(TAGS)] == [lb.lb_id]
    assert gw.find_load_balancers({"tke-clusterId": "cls-other"}) == []

    spec = ListenerSpec(
        port=80,
        name="tcp-80",
        scheduler="LEAST_CONN",
        session_expire_s=30,
        deregister_target_rst=True,
        health_check=HealthCheck(interval_s=5, timeout_s=2, healthy_threshold=2, unhealthy_threshold=3),
    )
    listener_id = gw.create_listener(lb.lb_id, spec)
    (listener,) = gw.list_listeners(lb.lb_id)
    assert listener.listener_id == listener_id
    assert ListenerSpec(**listener.model_dump(exclude={"listener_id"})) == spec
    gw.modify_listener(lb.lb_id, listener_id, spec.model_copy(update={"scheduler": "WRR"}))
    assert gw.list_listeners(lb.lb_id)[0].scheduler == "WRR"

    backends = pods(1200, listener_id)
    gw.register_targets(lb.lb_id, backends)
    assert rig.count("BatchRegisterTargets") == 3
    assert set(gw.list_targets(lb.lb_id)) == set(backends)

    gw.set_target_weights(lb.lb_id, [t.model_copy(update={"weight": 0}) for t in backends[:600]])
    assert rig.count("BatchModifyTargetWeight") == 2
    weights = {t.ip: t.weight for t in gw.list_targets(lb.lb_id)}
    assert sum(1 for w in weights.values() if w == 0) == 600

    rig.model.set_target_health(lb.lb_id, listener_id, backends[0].ip, 8080, "Alive")
    health = gw.describe_target_health([lb.lb_id])[lb.lb_id]
    assert len(health) == 1200
    assert next(h for h in health if h.ip == backends[0].ip).healthy

    gw.deregister_targets(lb.lb_id, backends)
    assert rig.count("BatchDeregisterTargets") == 3 and gw.list_targets(lb.lb_id) == []
    gw.delete_listener(lb.lb_id, listener_id)
    assert gw.list_listeners(lb.lb_id) == []
    gw.delete_load_balancer(lb.lb_id)
    assert gw.describe_load_balancer(lb.lb_id) is None
    gw.delete_load_balancer(lb.lb_id)


@pytest.mark.parametrize(
    "fault",
    [
        {"error_code": "RequestLimitExceeded", "count": 2},
        {"error_code": "FailedOperation.ResourceInOperating", "count": 2},
        {"error_code": "InternalError", "count": 2},
        {"drop_response": True, "count": 2},
        {"drop_response": True, "drop_status": 502, "count": 2},
    ],
    ids=["rate-limited", "locked", "internal", "dropped", "http-502"],
)
def test_transient_faults_are_retried_until_the_write_lands(rig: Rig, fault: dict[str, Any]) -> None:
    lb_id, listener_id = rig.lb_with_listener()
    rig.model.set_fault({"action": "BatchRegisterTargets", **fault})
    rig.gateway.register_targets(lb_id, pods(3, listener_id))
    assert rig.count("BatchRegisterTargets") == 3
    assert len(rig.gateway.list_targets(lb_id)) == 3


def test_dropped_create_listener_response_adopts_the_listener_it_made(rig: Rig) -> None:
    lb_id, _ = rig.lb_with_listener()
    rig.model.set_fault({"action": "CreateListener", "drop_response": True, "count": 1})
    listener_id = rig.gateway.create_listener(lb_id, ListenerSpec(port=81))
    assert [lst.listener_id for lst in rig.gateway.list_listeners(lb_id) if lst.port == 81] == [listener_id]


def test_instance_lock_from_another_writer_is_waited_out(rig: Rig) -> None:
    lb_id, listener_id = rig.lb_with_listener()
    rig.model.update_config({"task_duration_s": 3.0})
    rig.model.call("ModifyListener", {"LoadBalancerId": lb_id, "ListenerId": listener_id, "Scheduler": "WRR"})
    rig.gateway.register_targets(lb_id, pods(2, listener_id))
    assert "FailedOperation.ResourceInOperating" in rig.codes("BatchRegisterTargets")
    assert len(rig.gateway.list_targets(lb_id)) == 2


def test_fault_that_never_clears_exhausts_the_deadline(rig: Rig) -> None:
    lb_id, listener_id = rig.lb_with_listener()
    rig.model.set_fault({"action": "BatchRegisterTargets", "error_code": "RequestLimitExceeded"})
    with pytest.raises(RetryableError) as info:
        rig.gateway.register_targets(lb_id, pods(1, listener_id))
    assert info.value.code == "RequestLimitExceeded" and lb_id in info.value.message


def test_unknown_lb_is_not_found_with_code_and_request_id(rig: Rig) -> None:
    with pytest.raises(NotFound) as info:
        rig.gateway.register_targets("lb-missing", pods(1, "lbl-x"))
    last = rig.model.calls()["calls"][-1]
    assert info.value.code == last["error_code"]
    assert f"RequestId {last['request_id']}" in info.value.message and "lb-missing" in info.value.message


def test_bad_weight_is_permanent(rig: Rig) -> None:
    lb_id, listener_id = rig.lb_with_listener()
    rig.gateway.register_targets(lb_id, pods(1, listener_id))
    bad = Target.model_construct(listener_id=listener_id, ip="10.2.0.1", port=8080, weight=101)
    with pytest.raises(PermanentError) as info:
        rig.gateway.set_target_weights(lb_id, [bad])
    assert (info.value.code or "").startswith("InvalidParameter")
    assert "BatchModifyTargetWeight" in info.value.message and "RequestId" in info.value.message


def test_backend_quota_is_limit_exceeded(rig: Rig) -> None:
    lb_id, listener_id = rig.lb_with_listener()
    rig.model.update_config({"backend_quota": 5})
    with pytest.raises(LimitExceeded) as info:
        rig.gateway.register_targets(lb_id, pods(6, listener_id))
    assert info.value.code == "LimitExceeded" and "quota" in info.value.message


def test_unknown_listener_in_batch_names_the_listener(rig: Rig) -> None:
    lb_id, _ = rig.lb_with_listener()
    with pytest.raises(PermanentError, match="failed for listeners lbl-nope"):
        rig.gateway.register_targets(lb_id, pods(1, "lbl-nope"))


def test_failed_async_task_is_retryable_naming_action_and_task(rig: Rig) -> None:
    lb_id, listener_id = rig.lb_with_listener()
    rig.model.set_fault({"action": "ModifyListener", "fail_task": True, "count": 1})
    with pytest.raises(RetryableError, match=r"ModifyListener on lb-\S+ failed asynchronously \(task \S+\)") as info:
        rig.gateway.modify_listener(lb_id, listener_id, ListenerSpec(port=80, scheduler="LEAST_CONN"))
    assert info.value.code == "TaskFailed"
    assert rig.gateway.list_listeners(lb_id)[0].scheduler == "WRR"
