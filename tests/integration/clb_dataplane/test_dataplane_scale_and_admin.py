"""The dataplane at a few hundred targets on one machine, and its admin endpoints' validation.

300 targets across three listeners point at one accept-and-close TCP sink listening on 100 ports; all
must turn Alive, and targets removed from a listener must stop being probed.
"""

from __future__ import annotations

import json
import selectors
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from emulators.clb.dataplane import DataPlane
from emulators.clb.dataplane.admin import DataplaneAdminServer
from emulators.clb.views import ListenerView, TargetView
from tests.integration.clb_dataplane.conftest import FakeModel
from tests.support.polling import eventually

SINK_IP = "127.0.13.1"


class TcpSink:
    """Accepts and immediately closes connections on `count` ports (a healthy TCP backend farm)."""

    def __init__(self, count: int) -> None:
        self._selector = selectors.DefaultSelector()
        self.ports: list[int] = []
        for _ in range(count):
            server = socket.socket()
            server.bind((SINK_IP, 0))
            server.listen(64)
            server.setblocking(False)
            self._selector.register(server, selectors.EVENT_READ)
            self.ports.append(server.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(timeout=0.1):
                server: socket.socket = key.fileobj  # type: ignore[assignment]
                try:
                    connection, _ = server.accept()
                except BlockingIOError:
                    continue
                connection.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for key in list(self._selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        self._selector.close()


@pytest.fixture
def sink() -> Iterator[TcpSink]:
    farm = TcpSink(100)
    yield farm
    farm.stop()


@pytest.fixture
def model() -> FakeModel:
    return FakeModel()


@pytest.fixture
def plane(model: FakeModel) -> Iterator[DataPlane]:
    dataplane = DataPlane(model, tick_s=0.5)
    dataplane.start()
    yield dataplane
    dataplane.stop()


def test_three_hundred_targets_turn_alive_within_a_few_intervals(
    model: FakeModel, plane: DataPlane, sink: TcpSink
) -> None:
    health_check = {"HealthSwitch": 1, "TimeOut": 1, "IntervalTime": 1, "HealthNum": 2, "UnHealthNum": 2}
    for n in range(3):
        model.put_listener(
            ListenerView(
                lb_id="lb-scale",
                listener_id=f"lbl-scale{n}",
                vip="127.1.0.99",
                port=20000 + n,
                protocol="UDP",  # health-checked but not forwarded: this test is about probing
                health_check={**health_check, "CheckType": "TCP"},
                scheduler="WRR",
                targets=tuple(TargetView(SINK_IP, port, 10, "Unknown") for port in sink.ports),
            )
        )

    def alive_count() -> int:
        return sum(t.health == "Alive" for view in model.dataplane_snapshot() for t in view.targets)

    # HealthNum x IntervalTime = 2 s per target on an idle machine; the wall time is not bounded here (a loaded
    # machine stretches it; the probe rounds are unit-tested with a manual clock in test_health_tracker.py).
    eventually(lambda: alive_count() == 300, "300 targets Alive")
    assert len(plane.checker.statuses()) == 300

    first = model.dataplane_snapshot()[0]
    model.put_listener(replace(first, targets=first.targets[:10]))
    eventually(lambda: len(plane.checker.statuses()) == 210, "removed targets dropped")


@pytest.fixture
def admin(plane: DataPlane) -> Iterator[DataplaneAdminServer]:
    server = DataplaneAdminServer(plane)
    server.start()
    yield server
    server.stop()


def request(admin: DataplaneAdminServer, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    call = urllib.request.Request(f"{admin.url}{path}", data=body, method=method)
    try:
        with opener.open(call, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def test_admin_switches_notifications_and_validates_input(admin: DataplaneAdminServer) -> None:
    status, state = request(admin, "GET", "/_emulator/notifications")
    assert status == 200 and state["enabled"] is True and state["url"] is None

    changed = json.dumps({"enabled": False, "url": "http://127.0.0.1:1/cb", "secret": "k"}).encode()
    status, state = request(admin, "POST", "/_emulator/notifications", changed)
    assert status == 200
    assert (state["enabled"], state["url"], state["signed"]) == (False, "http://127.0.0.1:1/cb", True)

    for bad, fragment in [
        (b"not json", "not JSON"),
        (b"[1]", "JSON object"),
        (b'{"enabled": "no"}', "true or false"),
        (b'{"colour": 1}', "unknown fields"),
        (b'{"url": 5}', "must be a string"),
        (b'{"url": "ftp://x"}', "http(s) URL"),
    ]:
        status, error = request(admin, "POST", "/_emulator/notifications", bad)
        assert status == 400 and fragment in error["error"], (bad, error)

    status, error = request(admin, "GET", "/_emulator/nothing")
    assert status == 404 and "no dataplane admin endpoint" in error["error"]
    status, view = request(admin, "GET", "/_emulator/dataplane")
    assert status == 200 and view["listeners"] == {} and view["notifications"]["enabled"] is False
