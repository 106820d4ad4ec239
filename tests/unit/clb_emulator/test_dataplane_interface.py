"""The model's interface for the dataplane: snapshots, health reports and change notifications."""

from __future__ import annotations

import threading

import pytest

from emulators.clb.views import ListenerView, TargetView
from tests.unit.clb_emulator.conftest import ModelHarness


def test_snapshot_lists_every_listener_with_defaults_and_targets(h: ModelHarness) -> None:
    lb_id = h.lb()
    listener_id = h.listener(lb_id, 80, HealthCheck={"IntervalTime": 7})
    h.bind(lb_id, listener_id, "127.2.0.1")
    [view] = h.model.dataplane_snapshot()
    assert isinstance(view, ListenerView)
    assert (view.lb_id, view.listener_id, view.vip, view.port, view.protocol, view.scheduler) == (
        lb_id,
        listener_id,
        "127.1.0.1",
        80,
        "TCP",
        "WRR",
    )
    assert view.health_check["IntervalTime"] == 7
    assert {k: view.health_check[k] for k in ("HealthSwitch", "TimeOut", "HealthNum", "UnHealthNum", "CheckPort")} == {
        "HealthSwitch": 1,
        "TimeOut": 2,
        "HealthNum": 3,
        "UnHealthNum": 3,
        "CheckPort": -1,
    }
    assert view.targets == (TargetView("127.2.0.1", 8080, 10, "Unknown"),)


def test_set_target_health_returns_previous_detail_or_none(h: ModelHarness) -> None:
    lb_id = h.lb()
    listener_id = h.listener(lb_id)
    h.bind(lb_id, listener_id, "127.2.0.1")
    assert h.model.set_target_health(lb_id, listener_id, "127.2.0.1", 8080, "Alive") == "Unknown"
    assert h.model.set_target_health(lb_id, listener_id, "127.2.0.1", 8080, "Dead") == "Alive"
    assert h.model.set_target_health(lb_id, listener_id, "127.2.0.9", 8080, "Dead") is None
    assert h.model.set_target_health("lb-gone0000", listener_id, "127.2.0.1", 8080, "Dead") is None
    with pytest.raises(ValueError, match="health detail"):
        h.model.set_target_health(lb_id, listener_id, "127.2.0.1", 8080, "Healthy")


def test_subscribers_hear_changes_and_can_unsubscribe(h: ModelHarness) -> None:
    events: list[int] = []
    unsubscribe = h.model.subscribe(lambda: events.append(1))
    lb_id = h.lb()
    h.model.settle()  # the create task's end is noticed (and announced) on the next touch of the model
    after_create = len(events)
    assert after_create == 2
    h.call("CreateListener", LoadBalancerId=lb_id, Ports=[80], Protocol="TCP")
    assert len(events) == after_create  # applies only when the task ends
    h.finish()
    h.model.settle()
    assert len(events) == after_create + 1
    h.call("DescribeLoadBalancers")
    assert len(events) == after_create + 1
    unsubscribe()
    h.lb()
    assert len(events) == after_create + 1


def test_subscribers_run_outside_the_lock_and_failures_do_not_break_calls(h: ModelHarness) -> None:
    seen: list[int] = []

    def from_another_thread() -> None:
        # If the model lock were still held, this thread could not take it and join would time out.
        worker = threading.Thread(target=lambda: seen.append(len(h.model.dataplane_snapshot())))
        worker.start()
        worker.join(timeout=10)
        assert not worker.is_alive()

    def broken() -> None:
        raise RuntimeError("subscriber bug")

    h.model.subscribe(broken)
    h.model.subscribe(from_another_thread)
    h.lb()
    assert seen


def test_health_report_notifies_only_on_change(h: ModelHarness) -> None:
    lb_id = h.lb()
    listener_id = h.listener(lb_id)
    h.bind(lb_id, listener_id, "127.2.0.1")
    events: list[int] = []
    h.model.subscribe(lambda: events.append(1))
    h.model.set_target_health(lb_id, listener_id, "127.2.0.1", 8080, "Alive")
    h.model.set_target_health(lb_id, listener_id, "127.2.0.1", 8080, "Alive")
    assert events == [1]


def test_vip_block_keeps_two_emulators_on_one_machine_apart() -> None:
    from emulators.clb.config import ClbEmulatorConfig
    from emulators.clb.model import ClbModel

    model = ClbModel(ClbEmulatorConfig(task_duration_s=0, vip_block=42))
    model.call("CreateLoadBalancer", {"LoadBalancerType": "OPEN", "Number": 2})
    vips = sorted(lb["LoadBalancerVips"][0] for lb in model.call("DescribeLoadBalancers", {})["LoadBalancerSet"])
    assert vips == ["127.1.42.1", "127.1.42.2"]  # the default block 0 (127.1.0.N) stays free for another emulator
