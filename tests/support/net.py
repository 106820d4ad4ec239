"""Sockets for tests: a free port, and an HTTP(S) server on a background thread that stops cleanly.

`free_port(ip)` finds a port nothing listens on (for a process that must be told its port up front, such
as redis-server); `BackgroundServer` runs a `BaseHTTPRequestHandler` class on a free port of a loopback IP
(optionally behind TLS) and is a context manager; `stop()` is idempotent.
"""

from __future__ import annotations

import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


def free_port(ip: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((ip, 0))
        return int(probe.getsockname()[1])


class BackgroundServer:
    """A ThreadingHTTPServer serving `handler` on `ip` (port 0: any free one) from a daemon thread."""

    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler],
        *,
        ip: str = "127.0.0.1",
        port: int = 0,
        tls: ssl.SSLContext | None = None,
        start: bool = True,
    ) -> None:
        self.httpd = ThreadingHTTPServer((ip, port), handler)
        self.httpd.daemon_threads = True
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.ip, self.port = ip, int(self.httpd.server_address[1])
        self._scheme = "https" if tls is not None else "http"
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=f"test-http-{self.port}", daemon=True
        )
        self._running = False
        if start:
            self.start()

    def start(self) -> BackgroundServer:
        if not self._running:
            self._running = True
            self._thread.start()
        return self

    def url(self, path: str = "") -> str:
        return f"{self._scheme}://{self.ip}:{self.port}{path}"

    @property
    def running(self) -> bool:
        return self._running

    def stop(self) -> None:
        if self._running:
            self._running = False
            self.httpd.shutdown()
            self._thread.join(10)
        self.httpd.server_close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()
