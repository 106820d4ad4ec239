"""The real HTTP servers that stand in for a Pod's containers.

The kubelet (`kubelet.py`) starts one `ContainerServer` per declared container port on the Pod's
loopback IP once the Pod's start delay has passed, and stops it on a crash injection or when the
Pod's containers stop (`termination.py` decides when). Each server answers GET/HEAD on any path with
200 and a small JSON body naming the Pod and its version (the container's `VERSION` env value, else its
image tag), so tests and the CLB emulator's forwarding proxy can tell old Pods from new ones; a
`delay_ms=N` query parameter (at most 30 s) makes a request take that long, so tests can hold a request
in flight across a SIGTERM. Its readiness path answers 503 while a readiness failure is injected, so
HTTP health checks see what the kubelet reports.

A server stops in one of two ways, as a process does: `close_listener` (what a typical app does on
SIGTERM: no new connections, the requests in flight finish; `wait_idle` tells when they have) or
`kill` (SIGKILL or a crash: the listener and every open connection are closed at once, with a TCP
reset). A client that went away mid-answer prints nothing: the servers never write tracebacks.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import socket
import struct
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

DEFAULT_READINESS_PATH = "/ready"
MAX_REQUEST_DELAY_S = 30.0


def container_version(container: Mapping[str, Any]) -> str:
    """`VERSION` from the container env, else the image tag (`repo/app:1.2` -> `1.2`), else `latest`."""
    for env in container.get("env") or []:
        if env.get("name") == "VERSION" and env.get("value") is not None:
            return str(env["value"])
    image = str(container.get("image") or "")
    last = image.rsplit("/", 1)[-1]
    if "@" in last:
        return last.split("@", 1)[1]
    if ":" in last:
        return last.split(":", 1)[1]
    return "latest"


def readiness_path(container: Mapping[str, Any], default: str) -> str:
    """The container's HTTP readiness probe path if it declares one, else the simulator's default."""
    probe = (container.get("readinessProbe") or {}).get("httpGet") or {}
    return str(probe.get("path") or default)


@dataclass
class ContainerIdentity:
    namespace: str
    pod: str
    container: str
    version: str
    ip: str
    port: int
    readiness_path: str
    readiness_failed: threading.Event = field(default_factory=threading.Event)


class _Handler(BaseHTTPRequestHandler):
    server: _PodHttpServer
    # HTTP/1.0: one request per connection, so a stopped server drops its clients at once (a crash).
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def _answer(self, *, send_body: bool) -> None:
        identity = self.server.identity
        path, _, query = self.path.partition("?")
        delay = _delay_s(query)
        if delay > 0:
            time.sleep(delay)
        failing = path == identity.readiness_path and identity.readiness_failed.is_set()
        payload = {
            "pod": identity.pod,
            "namespace": identity.namespace,
            "container": identity.container,
            "version": identity.version,
            "ip": identity.ip,
            "port": identity.port,
            "path": path,
            "ready": not failing,
        }
        body = (json.dumps(payload) + "\n").encode()
        self.send_response(503 if failing else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging: a rollout's health checks would flood the output."""


def _delay_s(query: str) -> float:
    values = parse_qs(query).get("delay_ms") or []
    try:
        return min(max(float(values[0]) / 1000.0, 0.0), MAX_REQUEST_DELAY_S) if values else 0.0
    except ValueError:
        return 0.0


class _PodHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, identity: ContainerIdentity) -> None:
        self.identity = identity
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        self._wake_read, self._wake_write = socket.socketpair()  # before the bind: a failed bind closes them
        super().__init__((identity.ip, identity.port), _Handler)

    def serve_until_closed(self) -> None:
        """Accept until `stop_accepting`; sleeps in the selector rather than polling (hundreds of Pod
        servers polling every 50 ms took a large share of the simulator's CPU at the quota's scale)."""
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._wake_read, selectors.EVENT_READ)
            while True:
                for key, _ in selector.select():
                    if key.fileobj is self._wake_read:
                        return
                    self.handle_request()  # readable: accepts at once

    def stop_accepting(self) -> None:
        """Wake the accept loop and make it return (it handles nothing more)."""
        with contextlib.suppress(OSError):
            self._wake_write.send(b"x")

    def server_close(self) -> None:
        super().server_close()
        for end in (self._wake_read, self._wake_write):
            end.close()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up, or a connection reset by `kill`: a real app logs nothing either."""

    def reset_connections(self) -> None:
        """Close every open connection with a TCP reset (SO_LINGER 0), as the kernel does for a killed process."""
        with self.connections_lock:
            connections, self.connections = list(self.connections), set()
        for connection in connections:
            try:
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                # Detach first: the handler's file objects keep a plain close() from closing the descriptor
                # while they exist; a detached socket makes their next read or write fail at once instead.
                os.close(connection.detach())
            except OSError:
                pass


class ContainerServer:
    """One listening HTTP server for one container port; `start` raises OSError if the bind fails."""

    def __init__(self, identity: ContainerIdentity) -> None:
        self.identity = identity
        self._server: _PodHttpServer | None = None
        self._thread: threading.Thread | None = None
        self._closing: _PodHttpServer | None = None  # listener closed, requests in flight still answered

    @property
    def running(self) -> bool:
        """True while the listener accepts connections."""
        return self._server is not None

    @property
    def in_flight(self) -> int:
        """Connections accepted and not finished yet (after `close_listener`, what still drains)."""
        server = self._closing or self._server
        if server is None:
            return 0
        with server.connections_lock:
            return len(server.connections)

    def start(self) -> None:
        if self._server is not None:
            return
        server = _PodHttpServer(self.identity)
        thread = threading.Thread(
            target=server.serve_until_closed,
            name=f"pod-{self.identity.pod}-{self.identity.port}",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread

    def close_listener(self) -> None:
        """Stop accepting (new connections are refused); requests in flight are still answered."""
        server, thread = self._server, self._thread
        self._server, self._thread = None, None
        if server is None:
            return
        server.stop_accepting()
        if thread is not None:
            thread.join(5.0)
        server.socket.close()
        self._closing = server

    def wait_idle(self, timeout_s: float) -> bool:
        """After `close_listener`: wait until every accepted request has been answered; True if so."""
        deadline = time.monotonic() + timeout_s
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.in_flight == 0

    def kill(self) -> None:
        """Abrupt stop: the listener and every open connection close at once (clients see a reset)."""
        self.close_listener()
        server, self._closing = self._closing, None
        if server is not None:
            server.reset_connections()
            server.server_close()

    def stop(self) -> None:
        """A crash or the end of the Pod: the same as `kill`."""
        self.kill()


def container_ports(container: Mapping[str, Any]) -> list[int]:
    """TCP container ports, deduplicated in declaration order (UDP ports get no HTTP server)."""
    ports: list[int] = []
    for port in container.get("ports") or []:
        number = port.get("containerPort")
        if isinstance(number, int) and port.get("protocol", "TCP") == "TCP" and number not in ports:
            ports.append(number)
    return ports


def ports_free(ip: str, ports: list[int]) -> bool:
    """True when every port can be bound on `ip` now (nothing else on the machine listens there)."""
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((ip, port))
            except OSError:
                return False
    return True
