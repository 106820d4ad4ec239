"""Loopback helpers for the CLB dataplane tests: tiny HTTP backends, a callback receiver, a fake model.

Every server binds port 0 on a 127.x address (`tests.support.net.BackgroundServer`) and is shut down in
fixture teardown; the tests poll with `tests.support.polling.eventually`.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from emulators.clb.views import ListenerView, TargetView
from tests.support.net import BackgroundServer


class Backend:
    """An HTTP server on its own loopback IP that answers every request with its name."""

    def __init__(self, ip: str, name: str) -> None:
        self.name = name
        self.requests = 0
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                backend.requests += 1
                body = backend.name.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_HEAD(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                return

        self._server = BackgroundServer(Handler, ip=ip)
        self.ip, self.port = ip, self._server.port

    def stop(self) -> None:
        self._server.stop()


class CallbackReceiver:
    """Records JSON POSTs (body and headers) sent to it."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, Any], dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.received.append((json.loads(raw), dict(self.headers.items()), raw))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                return

        self._server = BackgroundServer(Handler)
        self.url = self._server.url("/clb-health")

    def events(self) -> list[dict[str, Any]]:
        return [event for event, _, _ in self.received]

    def stop(self) -> None:
        self._server.stop()


def fetch(ip: str, port: int, path: str = "/") -> str:
    """One GET on a fresh connection (so every request is a new L4 connection through the proxy)."""
    connection = http.client.HTTPConnection(ip, port, timeout=10)
    try:
        connection.request("GET", path, headers={"Connection": "close"})
        return connection.getresponse().read().decode()
    finally:
        connection.close()


class FakeModel:
    """The dataplane's view of `ClbModel`: listeners with targets, health writes, change callbacks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: dict[str, ListenerView] = {}
        self._callbacks: list[Callable[[], None]] = []

    def dataplane_snapshot(self) -> list[ListenerView]:
        with self._lock:
            return list(self._listeners.values())

    def set_target_health(self, lb_id: str, listener_id: str, ip: str, port: int, detail: str) -> str | None:
        with self._lock:
            view = self._listeners.get(listener_id)
            if view is None:
                return None
            for index, target in enumerate(view.targets):
                if (target.ip, target.port) == (ip, port):
                    targets = list(view.targets)
                    targets[index] = replace(target, health=detail)
                    self._listeners[listener_id] = replace(view, targets=tuple(targets))
                    previous: str | None = target.health
                    break
            else:
                return None
        self._changed()
        return previous

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback)

    def put_listener(self, view: ListenerView) -> None:
        with self._lock:
            existing = self._listeners.get(view.listener_id)
            if existing is not None:
                health = {(t.ip, t.port): t.health for t in existing.targets}
                view = replace(
                    view,
                    targets=tuple(replace(t, health=health.get((t.ip, t.port), t.health)) for t in view.targets),
                )
            self._listeners[view.listener_id] = view
        self._changed()

    def delete_listener(self, listener_id: str) -> None:
        with self._lock:
            del self._listeners[listener_id]
        self._changed()

    def health(self, listener_id: str) -> dict[str, str]:
        with self._lock:
            view = self._listeners[listener_id]
            return {f"{t.ip}:{t.port}": t.health for t in view.targets}

    def _changed(self) -> None:
        for callback in list(self._callbacks):
            callback()


def listener_view(vip: str, port: int, backends: list[Backend], **health_check: Any) -> ListenerView:
    return ListenerView(
        lb_id="lb-fake0001",
        listener_id="lbl-fake0001",
        vip=vip,
        port=port,
        protocol="TCP",
        health_check={
            "HealthSwitch": 1,
            "TimeOut": 1,
            "IntervalTime": 1,
            "HealthNum": 2,
            "UnHealthNum": 2,
            "CheckType": "HTTP",
            "HttpCode": 2,
            "HttpCheckPath": "/healthz",
            "HttpCheckDomain": "app.local",
            "HttpCheckMethod": "GET",
            **health_check,
        },
        scheduler="WRR",
        targets=tuple(TargetView(b.ip, b.port, 10, "Unknown") for b in backends),
    )


@pytest.fixture
def backends() -> Iterator[Callable[[str, str], Backend]]:
    started: list[Backend] = []

    def start(ip: str, name: str) -> Backend:
        backend = Backend(ip, name)
        started.append(backend)
        return backend

    yield start
    for backend in started:
        backend.stop()


@pytest.fixture
def callback_receiver() -> Iterator[CallbackReceiver]:
    receiver = CallbackReceiver()
    yield receiver
    receiver.stop()
