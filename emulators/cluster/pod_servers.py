"""The real HTTP servers that stand in for a Pod's containers.

The kubelet (`kubelet.py`) starts one `ContainerServer` per declared container port on the Pod's
loopback IP once the Pod's start delay has passed, and stops it on a crash injection or when the
Pod's grace period ends. Each server answers GET/HEAD on any path with 200 and a small JSON body
naming the Pod and its version (the container's `VERSION` env value, else its image tag), so tests
and the CLB emulator's forwarding proxy can tell old Pods from new ones. Its readiness path answers
503 while a readiness failure is injected, so HTTP health checks see what the kubelet reports.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_READINESS_PATH = "/ready"


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
        path = self.path.split("?", 1)[0]
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


class _PodHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, identity: ContainerIdentity) -> None:
        self.identity = identity
        super().__init__((identity.ip, identity.port), _Handler)


class ContainerServer:
    """One listening HTTP server for one container port; `start` raises OSError if the bind fails."""

    def __init__(self, identity: ContainerIdentity) -> None:
        self.identity = identity
        self._server: _PodHttpServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        if self._server is not None:
            return
        server = _PodHttpServer(self.identity)
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"pod-{self.identity.pod}-{self.identity.port}",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server, self._thread = None, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(5.0)


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
