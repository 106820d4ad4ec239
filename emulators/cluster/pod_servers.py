"""The real HTTP servers that stand in for a Pod's containers.

The kubelet (`kubelet.py`) starts one `ContainerServer` per declared container port on the Pod's
loopback IP once the Pod's start delay has passed (one event loop thread serves them all), and stops it
on a crash injection or when the Pod's containers stop (`termination.py` decides when). Each server
answers GET/HEAD on any path with 200 and a small JSON body naming the Pod and its version (the
container's `VERSION` env value, else its image tag), so tests and the CLB emulator's forwarding proxy
can tell old Pods from new ones; a `delay_ms=N` query parameter (at most 30 s) makes a request take that
long, so tests can hold a request in flight across a SIGTERM. Its readiness path answers 503 while a
readiness failure is injected, so HTTP health checks see what the kubelet reports.

A server stops in one of two ways, as a process does: `close_listener` (what a typical app does on
SIGTERM: no new connections, the requests in flight finish; `wait_idle` tells when they have) or
`kill` (SIGKILL or a crash: the listener and every open connection are closed at once, with a TCP
reset). A client that went away mid-answer prints nothing: the servers never write tracebacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import threading
import time
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
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


def _response(identity: ContainerIdentity, method: str, target: str) -> bytes:
    """The answer to one request: 200 and a JSON body naming the Pod (503 on a failing readiness path)."""
    if method not in ("GET", "HEAD"):
        return b"HTTP/1.0 501 Not Implemented\r\nContent-Length: 0\r\n\r\n"
    path, _, _query = target.partition("?")
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
    status = b"503 Service Unavailable" if failing else b"200 OK"
    head = b"HTTP/1.0 " + status + b"\r\nContent-Type: application/json\r\nContent-Length: "
    head += str(len(body)).encode() + b"\r\n\r\n"
    return head + (body if method == "GET" else b"")


def _delay_s(query: str) -> float:
    values = parse_qs(query).get("delay_ms") or []
    try:
        return min(max(float(values[0]) / 1000.0, 0.0), MAX_REQUEST_DELAY_S) if values else 0.0
    except ValueError:
        return 0.0


T = TypeVar("T")


class _ServingLoop:
    """One event loop thread serving every simulated container port of the process.

    A thread per server and one per connection (the standard library's servers) made hundreds of runnable
    threads at the quota's scale; they queued for the GIL long enough that the CLB emulator's 2 s health
    probes timed out in bursts. Here an idle server costs nothing and a request a few callbacks.
    """

    _lock = threading.Lock()
    _instance: _ServingLoop | None = None

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="pod-servers", daemon=True).start()

    @classmethod
    def get(cls) -> _ServingLoop:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` on the loop and wait for its result (from any thread but the loop's)."""
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout=10)


class ContainerServer:
    """One listening HTTP/1.0 server for one container port (one request per connection, so a stopped
    server drops its clients at once, as a crash does); `start` raises OSError if the bind fails.

    It accepts with its own loop over plain non-blocking sockets rather than `asyncio.start_server`: a
    connection accepted just before `Server.close()` is silently dropped there and left open (Python 3.11),
    so a client would hang instead of being answered or refused."""

    _REQUEST_HEAD_MAX = 65536

    def __init__(self, identity: ContainerIdentity) -> None:
        self.identity = identity
        self._listener: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._connections: dict[socket.socket, asyncio.Task[None]] = {}

    @property
    def running(self) -> bool:
        """True while the listener accepts connections."""
        return self._listener is not None

    @property
    def in_flight(self) -> int:
        """Connections accepted and not finished yet (after `close_listener`, what still drains)."""
        return len(self._connections)

    def start(self) -> None:
        if self._listener is not None:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.identity.ip, self.identity.port))
            sock.listen(128)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._listener = sock
        _ServingLoop.get().run(self._start_accepting(sock))

    async def _start_accepting(self, sock: socket.socket) -> None:
        self._accepting = asyncio.get_running_loop().create_task(self._accept(sock))

    async def _accept(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(sock)
            except OSError:
                return
            conn.setblocking(False)
            self._connections[conn] = loop.create_task(self._serve(conn))

    async def _serve(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = await loop.sock_recv(conn, 4096)
                if not chunk or len(head) > self._REQUEST_HEAD_MAX:
                    return
                head += chunk
            method, target, *_ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            delay = _delay_s(target.partition("?")[2])
            if delay > 0:
                await asyncio.sleep(delay)
            await loop.sock_sendall(conn, _response(self.identity, method, target))
        except (OSError, ValueError):
            pass  # a client that hung up or a bad request line: a real app logs nothing
        finally:
            self._connections.pop(conn, None)
            conn.close()

    def close_listener(self) -> None:
        """Stop accepting (new connections are refused); requests in flight are still answered."""
        listener, self._listener = self._listener, None
        if listener is not None:
            _ServingLoop.get().run(self._stop_accepting(listener))

    async def _stop_accepting(self, listener: socket.socket) -> None:
        if self._accepting is not None:
            self._accepting.cancel()
            self._accepting = None
        listener.close()  # connections the kernel queued and nobody accepted get a reset

    def wait_idle(self, timeout_s: float) -> bool:
        """After `close_listener`: wait until every accepted request has been answered; True if so."""
        deadline = time.monotonic() + timeout_s
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.in_flight == 0

    def kill(self) -> None:
        """Abrupt stop: the listener and every open connection close at once (clients see a reset)."""
        self.close_listener()
        if self._connections:
            _ServingLoop.get().run(self._reset_all())

    async def _reset_all(self) -> None:
        """Close every open connection with a TCP reset (SO_LINGER 0), as the kernel does for a killed process."""
        for conn, task in list(self._connections.items()):
            task.cancel()  # its pending read or write lets go of the socket first
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await asyncio.gather(*self._connections.values(), return_exceptions=True)
        self._connections.clear()

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
