"""The demo's failure attribution: a failed request -> its backend (proxy log) -> that Pod and weight then."""

from __future__ import annotations

from demo.attribution import attribute, summarize
from demo.load import Failure
from demo.observe import BackendView, PodView, Snapshot
from emulators.clb.dataplane.proxy import ConnectionRecord


def pod(name: str, ip: str, *, terminating: bool = False) -> PodView:
    return PodView(name, "Running", True, True, "v1", ip, terminating)


def test_each_failure_names_its_pod_its_state_and_its_weight_then() -> None:
    history = [
        Snapshot(
            t=100.0,
            pods=[pod("web-a", "10.0.0.1"), pod("web-b", "10.0.0.2")],
            backends=[BackendView("10.0.0.1", 80, 10, "Alive"), BackendView("10.0.0.2", 80, 10, "Alive")],
        ),
        Snapshot(
            t=101.0,
            pods=[pod("web-a", "10.0.0.1", terminating=True), pod("web-b", "10.0.0.2")],
            backends=[BackendView("10.0.0.1", 80, 10, "Alive"), BackendView("10.0.0.2", 80, 10, "Alive")],
        ),
        Snapshot(t=102.0, pods=[pod("web-b", "10.0.0.2")], backends=[BackendView("10.0.0.2", 80, 10, "Alive")]),
    ]
    connections = [
        ConnectionRecord(101.1, "lbl-1", "127.0.0.1", 40001, "10.0.0.1:80", "reset"),
        ConnectionRecord(20.0, "lbl-1", "127.0.0.1", 40002, "10.0.0.2:80", "served"),  # the port's old use
        ConnectionRecord(102.1, "lbl-1", "127.0.0.1", 40003, "", "no-backend"),
    ]
    failures = [
        Failure(101.2, 40001, "ConnectionResetError"),
        Failure(101.3, 40002, "ConnectionResetError"),
        Failure(102.2, 40003, "ConnectionResetError"),
        Failure(102.3, 0, "ConnectionRefusedError"),
    ]
    out = attribute(failures, connections, history)
    first = out[0]
    assert (first.pod, first.backend, first.terminating, first.weight, first.health, first.outcome) == (
        "web-a",
        "10.0.0.1:80",
        True,
        10,
        "Alive",
        "reset",
    )
    assert out[1].outcome == "unknown" and out[1].pod == "", "a port reused long ago is not this connection"
    assert (out[2].outcome, out[2].backend, out[2].weight) == ("no-backend", "", None)
    assert out[3].outcome == "unknown"
    assert any("1 x web-a 10.0.0.1:80 (terminating, weight 10 Alive) -> reset" in line for line in summarize(out))
