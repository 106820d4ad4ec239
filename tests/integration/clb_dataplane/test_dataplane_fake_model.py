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
    free_port,
    listener_view,
    wait_until,
)

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
    wait_until(lambda: all_health(model, "Alive"), what="both backends Alive")

    served = [fetch(VIP, port) for _ in range(40)]
    assert served.count("one") == 20 and served.count("two") == 20

    view = model.dataplane_snapshot()[0]
    model.put_listener(replace(view, targets=(view.targets[0], replace(view.targets[1], weight=0))))
    wait_until(lambda: plane.proxy.stats()[LISTENER]["eligible"] == [f"{one.ip}:{one.port}"], what="weight 0 applied")
    assert {fetch(VIP, port) for _ in range(10)} == {"one"}
    # Weight-0 targets are still probed: stopping it turns it Dead.
    two.stop()
    wait_until(lambda: model.health(LISTENER)[f"{two.ip}:{two.port}"] == "Dead", what="weight-0 target Dead")

    wait_until(lambda: len(callback_receiver.events()) >= 3, what="three notifications")
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
    wait_until(lambda: all_health(model, "Dead"), what="both Dead")
    wait_until(lambda: refused(VIP, port), what="VIP resets with no eligible backend")
    assert plane.proxy.stats()[LISTENER]["refused"] >= 1


def test_http_code_mismatch_is_dead_and_switch_off_is_close(
    model: FakeModel, plane: DataPlane, backends: Callable[[str, str], Backend]
) -> None:
    one = backends("127.0.11.3", "one")
    port = free_port(VIP)
    # The backend answers 200 but only 4xx counts as healthy here.
    model.put_listener(listener_view(VIP, port, [one], HttpCode=8))
    wait_until(lambda: all_health(model, "Dead"), what="wrong status code -> Dead")
    assert refused(VIP, port)

    model.put_listener(listener_view(VIP, port, [one], HealthSwitch=0))
    wait_until(lambda: all_health(model, "Close"), what="switch off -> Close")
    # With checks off the CLB forwards to every backend.
    wait_until(lambda: plane.proxy.stats()[LISTENER]["eligible"], what="Close target eligible")
    assert fetch(VIP, port) == "one"

    model.put_listener(listener_view(VIP, port, [one], CheckType="TCP"))
    wait_until(lambda: all_health(model, "Alive"), what="switch on, TCP check -> Alive")


def test_removed_targets_and_deleted_listeners_are_dropped(
    model: FakeModel, plane: DataPlane, backends: Callable[[str, str], Backend]
) -> None:
    one, two = backends("127.0.11.4", "one"), backends("127.0.11.5", "two")
    port = free_port(VIP)
    model.put_listener(listener_view(VIP, port, [one, two], CheckType="TCP"))
    wait_until(lambda: all_health(model, "Alive"), what="both Alive")

    model.put_listener(listener_view(VIP, port, [two], CheckType="TCP"))
    wait_until(lambda: [key.ip for key in plane.checker.statuses()] == [two.ip], what="removed target no longer probed")
    wait_until(lambda: {fetch(VIP, port) for _ in range(6)} == {"two"}, what="traffic only to the remaining target")

    model.delete_listener(LISTENER)
    wait_until(lambda: LISTENER not in plane.proxy.stats(), what="listener stopped")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((VIP, port), timeout=5).close()
    assert plane.checker.statuses() == {}
