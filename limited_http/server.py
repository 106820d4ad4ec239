"""The one hardened HTTP(S) server under every endpoint clb-direct runs itself (relay, local runtime).

The stdlib `http.server` stays the engine (no extra dependency in the relay image or the SCF layer);
this module adds what it lacks against hostile or broken clients, with one set of limits
(`HttpLimits`, from the `http_*` settings):

- a bounded number of connections (`max_connections`), each on its own thread; one more is refused
  at once (503 for plain HTTP, a close for TLS) instead of a thread per connection without end;
- TLS handshakes in the connection's thread under the read timeout, never in `accept()`, so one
  silent TCP peer cannot stall the accept loop or `/healthz`;
- one read deadline per request (`read_timeout_s`, from the first byte waited for to the last body
  byte): an idle keep-alive connection is closed, a request left half-sent gets 408;
- a body cap (`max_body_bytes`, default SCF's 6 MB synchronous event limit): 413 without reading it;
  a missing/negative/non-numeric Content-Length gets 400, chunked bodies 411;
- TCP_NODELAY and one write per response (`send_all`), so kept-alive clients never wait out the
  Nagle/delayed-ACK interplay between a header write and a body write.

Used by `relay/server.py` and `emulators/runtime/runtime.py` (`shared.config` builds the limits from the
settings); it imports only the stdlib.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_REQUEST_LINE = 65536


@dataclass(frozen=True)
class HttpLimits:
    max_body_bytes: int = 6 * 1024 * 1024
    read_timeout_s: float = 15.0
    max_connections: int = 320

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1 or self.read_timeout_s <= 0 or self.max_connections < 1:
            raise ValueError(f"HTTP limits must be positive: {self}")


class _DeadlineSocketReader(io.RawIOBase):
    """Raw reads from a socket that fail with TimeoutError once the handler's request deadline passes."""

    def __init__(self, sock: socket.socket, handler: LimitedRequestHandler) -> None:
        self._sock = sock
        self._handler = handler

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        remaining = self._handler.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("request read deadline passed")
        self._sock.settimeout(remaining)
        count = self._sock.recv_into(buffer)
        self._handler.bytes_read += count
        return count


class LimitedRequestHandler(BaseHTTPRequestHandler):
    """Base handler: per-request deadline, `read_body()` with the cap, `send_all()` in one write."""

    protocol_version = "HTTP/1.1"
    server: LimitedHTTPServer
    deadline: float = 0.0
    bytes_read: int = 0

    def log_message(self, format: str, *args: Any) -> None:  # structured logs only; access logs are noise
        return

    def setup(self) -> None:
        super().setup()
        self.rfile = io.BufferedReader(_DeadlineSocketReader(self.connection, self))

    def handle_one_request(self) -> None:
        self.deadline = time.monotonic() + self.server.limits.read_timeout_s
        self.bytes_read = 0
        self.raw_requestline = b""
        try:
            self.raw_requestline = self.rfile.readline(MAX_REQUEST_LINE + 1)
            if len(self.raw_requestline) > MAX_REQUEST_LINE:
                self.close_connection = True
                self.send_json(414, {"error": "RequestURITooLong", "message": "request line over 64 KiB"})
                return
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():
                return
            method = getattr(self, f"do_{self.command}", None)
            if method is None:
                self.send_json(501, {"error": "NotImplemented", "message": f"method {self.command} not supported"})
                return
            method()
            self.wfile.flush()
        except TimeoutError:
            self.close_connection = True
            if self.bytes_read or self.raw_requestline:
                self.server.count("timeouts_408")
                self._timeout_reply()

    def _timeout_reply(self) -> None:
        limit = self.server.limits.read_timeout_s
        with contextlib.suppress(OSError):
            self.send_json(408, {"error": "RequestTimeout", "message": f"request not received within {limit:g} s"})

    # --- bodies -------------------------------------------------------------------------------------
    def _reject(self, status: int, error: str, message: str) -> None:
        self.close_connection = True  # the unread body would be parsed as the next request
        self.server.count(f"rejected_{status}")
        self.send_json(status, {"error": error, "message": message})

    def read_body(self) -> bytes | None:
        """The request body, or None after answering 400/408/411/413 (the caller just returns)."""
        if self.headers.get("Transfer-Encoding"):
            self._reject(411, "LengthRequired", "chunked bodies are not accepted; send a Content-Length")
            return None
        raw = (self.headers.get("Content-Length") or "0").strip()
        if not raw.isdigit():
            self._reject(400, "InvalidInput", f"Content-Length {raw[:40]!r} is not a non-negative integer")
            return None
        length = int(raw)
        cap = self.server.limits.max_body_bytes
        if length > cap:
            self._reject(413, "PayloadTooLarge", f"body of {length} bytes is over the limit (max_body_bytes={cap})")
            return None
        if length == 0:
            return b""
        body = self.rfile.read(length)
        if len(body) < length:  # the peer closed early: nothing to answer
            self.close_connection = True
            return None
        return body

    # --- responses ----------------------------------------------------------------------------------
    def send_all(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        """Status line, headers and body in one write (no Nagle wait between them)."""
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        buffered: list[bytes] = getattr(self, "_headers_buffer", [])
        payload = b"".join([*buffered, b"\r\n", body])
        self._headers_buffer: list[bytes] = []
        self.connection.settimeout(self.server.limits.read_timeout_s)  # a client that never reads
        self.wfile.write(payload)

    def send_json(self, status: int, payload: object) -> None:
        self.send_all(status, {"Content-Type": "application/json"}, json.dumps(payload, default=str).encode())


class LimitedHTTPServer(ThreadingHTTPServer):
    """A threading server with a connection cap, off-accept TLS handshakes and per-connection sockets tuned."""

    daemon_threads = True
    request_queue_size = 128  # the listen backlog: a burst queues in the kernel instead of SYN retries

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[LimitedRequestHandler],
        *,
        limits: HttpLimits | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.limits = limits or HttpLimits()
        self.ssl_context = ssl_context
        self.counters: Counter[str] = Counter()
        self._active = 0
        self._lock = threading.Lock()
        super().__init__(address, handler)

    @property
    def scheme(self) -> str:
        return "https" if self.ssl_context is not None else "http"

    def count(self, key: str) -> None:
        with self._lock:
            self.counters[key] += 1

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"active_connections": self._active, **self.counters}

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._lock:
            full = self._active >= self.limits.max_connections
            if not full:
                self._active += 1
            else:
                self.counters["refused_busy"] += 1
        if full:
            self._refuse(request)
            return
        thread = threading.Thread(target=self._serve_connection, args=(request, client_address), daemon=True)
        thread.start()

    def _refuse(self, request: socket.socket) -> None:
        if self.ssl_context is None:
            body = b'{"error":"ServerBusy","message":"too many open connections; retry"}'
            head = (
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\nRetry-After: 1\r\n\r\n"
            )
            with contextlib.suppress(OSError):
                request.setblocking(False)  # the accept thread must never wait on a peer
                request.send(head.encode() + body)
        self.shutdown_request(request)

    def _serve_connection(self, request: socket.socket, client_address: Any) -> None:
        connection: socket.socket = request
        try:
            with contextlib.suppress(OSError):
                request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ssl_context is not None:
                connection = self._handshake(request)
            self.finish_request(connection, client_address)
        except (ssl.SSLError, OSError):
            self.count("connection_errors")
        except Exception:
            self.handle_error(connection, client_address)
        finally:
            self.shutdown_request(connection)
            with self._lock:
                self._active -= 1

    def _handshake(self, request: socket.socket) -> ssl.SSLSocket:
        # Read once: an owner may swap in a reloaded context at any time (never mutate the live one).
        context = self.ssl_context
        assert context is not None
        tls = context.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
        try:
            tls.settimeout(self.limits.read_timeout_s)
            tls.do_handshake()
        except (ssl.SSLError, OSError):
            self.count("tls_handshake_failed")
            tls.close()
            raise
        return tls
