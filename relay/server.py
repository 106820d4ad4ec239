"""The relay's HTTP(S) endpoint: audit webhook `EventList` POSTs and `GET /healthz`.

The API server's webhook backend POSTs EventLists (reference/kubernetes.md §1.4) and retries on any
non-2xx, so we answer 200 as soon as the events are filtered into the (non-blocking, bounded)
buffer; only a body that is not an EventList gets 400. `/healthz` reports the counters the app
collects (`stats()`), for the Deployment's probes and for tests.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_BODY_BYTES = 64 * 1024 * 1024

EventListSink = Callable[[dict[str, Any]], int]


class RelayHttpServer:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        on_event_list: EventListSink,
        stats: Callable[[], dict[str, Any]],
        tls_cert: str | None = None,
        tls_key: str | None = None,
    ) -> None:
        self._on_event_list = on_event_list
        self._stats = stats
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self.scheme = "http"
        if tls_cert and tls_key:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls_cert, tls_key)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{self.scheme}://{host!s}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name="relay-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # JSON logs only; access logs are noise
                return

            def _reply(self, status: int, payload: object) -> None:
                body = json.dumps(payload, default=str).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] in ("/healthz", "/readyz"):
                    self._reply(200, server._stats())
                else:
                    self._reply(404, {"error": "NotFound", "message": "GET /healthz; POST audit EventLists to /"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length <= 0 or length > MAX_BODY_BYTES:
                    self._reply(400, {"error": "InvalidInput", "message": f"body length {length} out of range"})
                    return
                try:
                    payload = json.loads(self.rfile.read(length))
                except json.JSONDecodeError as exc:
                    self._reply(400, {"error": "InvalidInput", "message": f"body is not JSON: {exc.msg}"})
                    return
                if not isinstance(payload, dict) or payload.get("kind") != "EventList":
                    self._reply(400, {"error": "InvalidInput", "message": "expected an audit.k8s.io/v1 EventList"})
                    return
                kept = server._on_event_list(payload)
                self._reply(200, {"kept": kept})

        return Handler
