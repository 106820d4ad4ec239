"""DataPlane over a fake model: real probes, real forwarding and real callbacks on loopback addresses.

The model is a small fake so these tests can exercise the corners (weight 0, switch off, listener
deleted, wrong HTTP code) quickly with 1 s intervals; `test_emulator_sdk.py` covers the real API path.
"""

from __future__ import annotations

import http.client
import socket
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest

from emulators.clb.dataplane import DataPlane, HealthNotifier, NotifierSettings
from tests.integration.clb_dataplane.conftest import (
    Backend,
    CallbackReceiver,
    FakeModel,
    fetch,
    listener_view,
)
from tests.support.net import free_port
from tests.support.polling import eventually

VIP = "127.1.0.77"
LISTENER = "lbl-fake0001"


@pytest.fixture
def model() -> FakeModel:
    return FakeModel()


@pytest.fixture
def plane(model: FakeModel, callback_receiver: CallbackReceiver) -> Iterator[DataPlane]:
    notifier = HealthNotifier(NotifierSettings(url=callback_receiver.url, region="ap-test", backoff_base_s=0.05))
    dataplane = DataPlane(model, notifier, tick_s=0.2)
    dataplane.start()
    yield dataplane
    dataplane.stop()


def all_health(model: FakeModel, expected: str) -> bool:
    health = model.health(LISTENER)
    return bool(health) and set(health.values()) == {expected}


def refused(ip: str, port: int) -> bool:
    try:
        fetch(ip, port)
    except (ConnectionError, http.client.HTTPException):
        return True
    return False


def test_probes_forward_and_notify(
    model: FakeModel,
    plane: DataPlane,
    backends: Callable[[str, str], Backend],
    callback_receiver: CallbackReceiver,
) -> None:
    one, two = backends("127.0.11.1", "one"), backends("127.0.11.2", "two")
    port = free_port(VIP)
    model.put_listener(listener_view(VIP, port, [one, two]))
    eventually(lambda: all_health(model, "Alive"), "both backends Alive")

    served = [fetch(VIP, port) for _ in range(40)]
    assert served.count("one") == 20 and served.count("two") == 20

    view = model.dataplane_snapshot()[0]
    model.put_listener(replace(view, targets=(view.targets[0], replace(view.targets[1], weight=0))))
    eventually(lambda: plane.proxy.stats()[LISTENER]["eligible"] == [f"{one.ip}:{one.port}"], "weight 0 applied")
    assert {fetch(VIP, port) for _ in range(10)} == {"one"}
    # Weight-0 targets are still probed: stopping it turns it Dead.
    two.stop()
    eventually(lambda: model.health(LISTENER)[f"{two.ip}:{two.port}"] == "Dead", "weight-0 target Dead")

    eventually(lambda: len(callback_receiver.events()) >= 3, "three notifications")
    events = callback_receiver.events()
    assert sorted((e["target"]["ip"], e["oldStatus"], e["newStatus"]) for e in events) == [
        ("127.0.11.1", "Unknown", "Alive"),
        ("127.0.11.2", "Alive", "Dead"),
        ("127.0.11.2", "Unknown", "Alive"),
    ]
    assert [e["sequence"] for e in events] == sorted(e["sequence"] for e in events)
    shape = {(e["listenerId"], e["port"], e["protocol"], e["region"]) for e in events}
    assert shape == {(LISTENER, port, "TCP", "ap-test")}

    one.stop()
    eventually(lambda: all_health(model, "Dead"), "both Dead")
    eventually(lambda: refused(VIP, port), "VIP resets with no eligible backend")
    assert plane.proxy.stats()[LISTENER]["refused"] >= 1
    # The connection log says where each connection went and how it ended (the demo attributes failures).
    log = plane.proxy.connections()
    assert sum(1 for r in log if r.outcome == "served" and r.backend == f"{one.ip}:{one.port}") >= 30
    assert any(r.outcome == "no-backend" and r.backend == "" and r.client_port > 0 for r in log)
    assert all(r.listener_id == LISTENER and r.client_ip == "127.0.0.1" for r in log)


def test_http_code_mismatch_is_dead_and_switch_off_is_close(
    model: FakeModel, plane: DataPlane, backends: Callable[[str, str], Backend]
) -> None:
    one = backends("127.0.11.3", "one")
    port = free_port(VIP)
    # The backend answers 200 but only 4xx counts as healthy here.
    model.put_listener(listener_view(VIP, port, [one], HttpCode=8))
    eventually(lambda: all_health(model, "Dead"), "wrong status code -> Dead")
    assert refused(VIP, port)

    model.put_listener(listener_view(VIP, port, [one], HealthSwitch=0))
    eventually(lambda: all_health(model, "Close"), "switch off -> Close")
    # With checks off the CLB forwards to every backend.
    eventually(lambda: plane.proxy.stats()[LISTENER]["eligible"], "Close target eligible")
    assert fetch(VIP, port) == "one"

    model.put_listener(listener_view(VIP, port, [one], CheckType="TCP"))
    eventually(lambda: all_health(model, "Alive"), "switch on, TCP check -> Alive")


def test_removed_targets_and_deleted_listeners_are_dropped(
    model: FakeModel, plane: DataPlane, backends: Callable[[str, str], Backend]
) -> None:
    one, two = backends("127.0.11.4", "one"), backends("127.0.11.5", "two")
    port = free_port(VIP)
    model.put_listener(listener_view(VIP, port, [one, two], CheckType="TCP"))
    eventually(lambda: all_health(model, "Alive"), "both Alive")

    model.put_listener(listener_view(VIP, port, [two], CheckType="TCP"))
    eventually(lambda: [key.ip for key in plane.checker.statuses()] == [two.ip], "removed target no longer probed")
    eventually(lambda: {fetch(VIP, port) for _ in range(6)} == {"two"}, "traffic only to the remaining target")

    model.delete_listener(LISTENER)
    eventually(lambda: LISTENER not in plane.proxy.stats(), "listener stopped")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((VIP, port), timeout=5).close()
    assert plane.checker.statuses() == {}
