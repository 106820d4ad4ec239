"""Seeding/export round trips, fault rules and the rate limiter."""

from __future__ import annotations

import pytest

from emulators.clb.errors import ClbApiError
from emulators.clb.faults import CallAbandoned, FaultInjector, FaultRule
from emulators.clb.model import ClbModel
from emulators.clb.ratelimit import RateLimiter
from shared.clock import FakeClock
from tests.unit.clb_emulator.conftest import ModelHarness

SEED = {
    "load_balancers": [
        {
            "LoadBalancerId": "lb-seeded01",
            "Vip": "127.1.0.5",
            "Tags": [{"TagKey": "owner", "TagValue": "me"}],
            "Listeners": [
                {
                    "ListenerId": "lbl-seeded01",
                    "Protocol": "TCP",
                    "Port": 80,
                    "HealthCheck": {"HealthSwitch": 0},
                    "Targets": [{"EniIp": "127.2.0.1", "Port": 8080, "Weight": 3}],
                }
            ],
        }
    ]
}


def test_seed_fills_defaults_and_round_trips(h: ModelHarness) -> None:
    h.model.seed(SEED)
    state = h.model.export_state()
    [lb] = state["load_balancers"]
    assert (lb["LoadBalancerId"], lb["Vip"], lb["Status"], lb["LoadBalancerType"]) == (
        "lb-seeded01",
        "127.1.0.5",
        1,
        "INTERNAL",
    )
    [listener] = lb["Listeners"]
    assert listener["HealthCheck"]["HealthSwitch"] == 0 and listener["HealthCheck"]["IntervalTime"] == 5
    assert listener["Targets"] == [{"EniIp": "127.2.0.1", "Port": 8080, "Weight": 3, "Health": "Close", "Tag": ""}]
    h.model.seed(state)
    assert h.model.export_state()["load_balancers"] == state["load_balancers"]


def test_new_load_balancers_never_reuse_a_seeded_vip(h: ModelHarness) -> None:
    h.model.seed(SEED)
    created = h.call("CreateLoadBalancer", LoadBalancerType="OPEN")["LoadBalancerIds"][0]
    vips = {lb["LoadBalancerId"]: lb["Vip"] for lb in h.model.export_state()["load_balancers"]}
    assert vips[created] == "127.1.0.6"


def test_seeded_targets_answer_the_api(h: ModelHarness) -> None:
    h.model.seed(SEED)
    listeners = h.call("DescribeTargets", LoadBalancerId="lb-seeded01")["Listeners"]
    assert [(t["PrivateIpAddresses"], t["Weight"]) for t in listeners[0]["Targets"]] == [(["127.2.0.1"], 3)]


@pytest.mark.parametrize(
    "bad",
    [
        {"load_balancers": [{"Listeners": [{"Port": 80}]}]},
        {"load_balancers": [{"Listeners": [{"Protocol": "SCTP", "Port": 80}]}]},
        {
            "load_balancers": [
                {
                    "Listeners": [
                        {"Protocol": "TCP", "Port": 80, "Targets": [{"EniIp": "1.1.1.1", "Port": 1, "Health": "Fine"}]}
                    ]
                }
            ]
        },
        {"load_balancers": [{"LoadBalancerId": "lb-a"}, {"LoadBalancerId": "lb-a"}]},
    ],
)
def test_bad_seed_is_refused_and_leaves_state_alone(h: ModelHarness, bad: dict[str, object]) -> None:
    h.model.seed(SEED)
    with pytest.raises(ClbApiError):
        h.model.seed(bad)
    assert [lb["LoadBalancerId"] for lb in h.model.export_state()["load_balancers"]] == ["lb-seeded01"]


def test_reset_forgets_state_and_calls(h: ModelHarness) -> None:
    h.lb()
    h.model.reset()
    assert h.model.export_state()["load_balancers"] == []
    assert h.model.calls() == {"calls": [], "counts": {}}


def test_fault_count_and_wildcard() -> None:
    faults = FaultInjector()
    faults.set(FaultRule(action="*", error_code="InternalError", count=2))
    decisions = [faults.decide("DescribeTargets") for _ in range(3)]
    assert [d.error_code if d else None for d in decisions] == ["InternalError", "InternalError", None]
    faults.set(FaultRule(action="RegisterTargets", latency_s=0.5))
    specific = faults.decide("RegisterTargets")
    assert specific is not None and specific.latency_s == 0.5 and specific.error_code is None
    faults.clear("RegisterTargets")
    assert [r["action"] for r in faults.rules()] == ["*"]
    faults.clear()
    assert faults.decide("RegisterTargets") is None


@pytest.mark.parametrize(
    "raw",
    [
        {"error_code": "X"},
        {"action": "A", "bogus": 1},
        {"action": "A", "rate": 2},
        {"action": "A", "latency_s": -1},
        {"action": "A", "hang_s": -1},
    ],
)
def test_bad_fault_rules_are_refused(raw: dict[str, object]) -> None:
    with pytest.raises(ClbApiError):
        FaultRule.from_dict(raw)


def test_model_sleeps_injected_latency() -> None:
    slept: list[float] = []
    model = ClbModel(clock=FakeClock().monotonic, sleep=slept.append)
    model.set_fault({"action": "DescribeLoadBalancers", "latency_s": 0.3})
    model.call("DescribeLoadBalancers", {})
    assert slept == [0.3]


def test_a_hung_call_whose_caller_gave_up_is_abandoned_unapplied() -> None:
    clock = FakeClock()
    model = ClbModel(clock=clock.monotonic, wall_clock=clock.now, sleep=clock.sleep)
    model.set_fault({"action": "CreateLoadBalancer", "hang_s": 30.0, "count": 1})
    with pytest.raises(CallAbandoned):
        model.invoke("CreateLoadBalancer", {"LoadBalancerType": "OPEN"}, caller_gone=lambda: clock.monotonic() >= 2)
    assert 2 <= clock.monotonic() < 30  # let go as soon as the caller left, not after the whole hang
    assert model.export_state()["load_balancers"] == []
    [abandoned] = model.calls()["calls"]
    assert abandoned["action"] == "CreateLoadBalancer" and abandoned["abandoned"] is True
    model.call("CreateLoadBalancer", {"LoadBalancerType": "OPEN"})  # count 1: the next call does not hang
    assert len(model.export_state()["load_balancers"]) == 1


def test_a_hung_call_whose_caller_waits_runs_late() -> None:
    clock = FakeClock()
    model = ClbModel(clock=clock.monotonic, wall_clock=clock.now, sleep=clock.sleep)
    model.set_fault({"action": "CreateLoadBalancer", "hang_s": 30.0})
    model.invoke("CreateLoadBalancer", {"LoadBalancerType": "OPEN"}, caller_gone=lambda: False)
    assert clock.monotonic() == pytest.approx(30.0)
    assert len(model.export_state()["load_balancers"]) == 1
    assert model.calls()["calls"][-1]["abandoned"] is False


def test_rate_limiter_window_slides() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock.monotonic)
    assert all(limiter.allow("A", 3) for _ in range(3))
    assert not limiter.allow("A", 3)
    assert limiter.allow("B", 3)
    clock.advance(0.999)
    assert not limiter.allow("A", 3)
    clock.advance(0.001)
    assert limiter.allow("A", 3)
