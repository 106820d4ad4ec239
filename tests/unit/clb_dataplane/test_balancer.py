"""Backend selection: smooth weighted round robin, weighted least connections, IP hash."""

from __future__ import annotations

from collections import Counter

from emulators.clb.dataplane.balancer import SmoothWeightedRoundRobin, TargetPicker
from emulators.clb.dataplane.proxy import eligible_backends
from emulators.clb.views import ListenerView, TargetView


def test_smooth_wrr_is_exact_per_cycle_and_interleaved() -> None:
    wrr: SmoothWeightedRoundRobin[str] = SmoothWeightedRoundRobin()
    wrr.update({"a": 5, "b": 1, "c": 1})
    cycle = [wrr.pick() for _ in range(7)]
    assert Counter(cycle) == {"a": 5, "b": 1, "c": 1}
    # nginx's smooth sequence: the heavy backend never takes the whole burst.
    assert cycle == ["a", "a", "b", "a", "c", "a", "a"]
    assert Counter(wrr.pick() for _ in range(70)) == {"a": 50, "b": 10, "c": 10}


def test_equal_weights_alternate() -> None:
    wrr: SmoothWeightedRoundRobin[str] = SmoothWeightedRoundRobin()
    wrr.update({"a": 10, "b": 10})
    assert [wrr.pick() for _ in range(4)] == ["a", "b", "a", "b"]


def test_zero_weight_and_empty_sets_are_never_picked() -> None:
    wrr: SmoothWeightedRoundRobin[str] = SmoothWeightedRoundRobin()
    assert wrr.pick() is None
    wrr.update({"a": 0, "b": 3})
    assert {wrr.pick() for _ in range(10)} == {"b"}
    wrr.update({"a": 0})
    assert wrr.pick() is None


def test_update_keeps_the_rotation_of_surviving_targets() -> None:
    wrr: SmoothWeightedRoundRobin[str] = SmoothWeightedRoundRobin()
    wrr.update({"a": 1, "b": 1})
    assert wrr.pick() == "a"
    wrr.update({"a": 1, "b": 1, "c": 1})
    # "b" was next before the refresh and still is: a health refresh must not restart the cycle.
    assert wrr.pick() == "b"
    wrr.update({"a": 1})
    assert [wrr.pick() for _ in range(3)] == ["a", "a", "a"]


def test_least_conn_prefers_lowest_load_relative_to_weight() -> None:
    picker: TargetPicker[str] = TargetPicker("LEAST_CONN")
    picker.update({"a": 10, "b": 10})
    assert picker.pick({"a": 3, "b": 1}) == "b"
    picker.update({"a": 30, "b": 10})
    # a: 3/30 = 0.1 per weight, b: 1/10 = 0.1 -> tie; c-less ties share traffic via WRR.
    assert {picker.pick({"a": 3, "b": 1}) for _ in range(4)} == {"a", "b"}
    assert picker.pick({"a": 2, "b": 1}) == "a"


def test_least_conn_with_idle_backends_still_spreads_sequential_traffic() -> None:
    picker: TargetPicker[str] = TargetPicker("least_conn")
    picker.update({"a": 10, "b": 10})
    assert Counter(picker.pick({}) for _ in range(10)) == {"a": 5, "b": 5}


def test_ip_hash_is_sticky_per_client_and_spreads_clients() -> None:
    picker: TargetPicker[str] = TargetPicker("WRR")
    picker.update({"a": 10, "b": 10, "c": 10}, scheduler="IP_HASH")
    first = picker.pick(client_ip="127.0.0.5")
    assert all(picker.pick(client_ip="127.0.0.5") == first for _ in range(5))
    assert len({picker.pick(client_ip=f"127.0.{n}.1") for n in range(50)}) == 3


def test_picker_with_no_candidates_returns_none() -> None:
    picker: TargetPicker[str] = TargetPicker()
    assert picker.pick() is None
    picker.update({"a": 0})
    assert picker.candidates == {} and picker.pick({}) is None


def test_eligible_backends_are_healthy_with_weight() -> None:
    view = ListenerView(
        lb_id="lb-1",
        listener_id="lbl-1",
        vip="127.1.0.1",
        port=80,
        protocol="TCP",
        health_check={},
        scheduler="WRR",
        targets=(
            TargetView("127.0.10.1", 80, 10, "Alive"),
            TargetView("127.0.10.2", 80, 0, "Alive"),
            TargetView("127.0.10.3", 80, 10, "Dead"),
            TargetView("127.0.10.4", 80, 10, "Unknown"),
            TargetView("127.0.10.5", 80, 7, "Close"),
        ),
    )
    assert eligible_backends(view) == {("127.0.10.1", 80): 10, ("127.0.10.5", 80): 7}
