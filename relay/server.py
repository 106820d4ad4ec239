"""The relay's HTTP(S) endpoint: audit webhook `EventList` POSTs and `GET /healthz`.

The API server's webhook backend POSTs EventLists and retries on any
non-2xx, so we answer 200 only once the kept events were delivered to the router (or 503 after
`ack_timeout_s`, and its retry finds them coalesced in the buffer): a relay that dies holding events
loses none the API server has not been told to resend. Poison events are listed by index in the
answer and skipped; only a body that is not an EventList gets 400. `/healthz` reports the counters the app
collects (`stats()`), for the Deployment's probes and for tests. The server is
`limited_http.LimitedHTTPServer`: TLS handshakes off the accept path, a body cap, a read
deadline and a connection cap (`HttpLimits`).
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from limited_http import HttpLimits, LimitedHTTPServer, LimitedRequestHandler
from relay.auth import AuditAuth
from shared.config import Settings

if TYPE_CHECKING:
    from relay.app import AuditReceipt

EventListSink = Callable[[dict[str, Any]], "AuditReceipt"]


def http_limits(settings: Settings) -> HttpLimits:
    """The `http_*` settings as the limits every HTTP server we run applies (relay and local runtime)."""
    return HttpLimits(
        max_body_bytes=settings.http_max_body_bytes,
        read_timeout_s=settings.http_read_timeout_s,
        max_connections=settings.http_max_connections,
    )


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
        limits: HttpLimits | None = None,
        ack_timeout_s: float = 10.0,
        auth: AuditAuth | None = None,
        on_unauthenticated: Callable[[], None] = lambda: None,
        ready: Callable[[], str | None] = lambda: None,
    ) -> None:
        self._ready = ready  # None = ready, else why not (the readiness probe gets 503 with it)
        self.ack_timeout_s = ack_timeout_s
        self.auth = auth or AuditAuth(allow_unauthenticated=True)
        self._on_unauthenticated = on_unauthenticated
        self._on_event_list = on_event_list
        self._stats = stats
        context: ssl.SSLContext | None = None
        if tls_cert and tls_key:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(tls_cert, tls_key)
        self.auth.apply_to(context)
        self._server = LimitedHTTPServer((host, port), self._handler_class(), limits=limits, ssl_context=context)
        self.scheme = self._server.scheme
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"{self.scheme}://{host}:{port}"

    def http_stats(self) -> dict[str, int]:
        return self._server.stats()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name="relay-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _handler_class(self) -> type[LimitedRequestHandler]:
        server = self

        class Handler(LimitedRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/healthz":
                    self.send_json(200, server._stats())
                elif path == "/readyz":
                    why = server._ready()
                    self.send_json(503 if why else 200, {"ready": why is None, "reason": why or "ok"})
                else:
                    self.send_json(404, {"error": "NotFound", "message": "GET /healthz; POST audit EventLists to /"})

            def _authenticated(self) -> bool:
                peer = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
                if server.auth.allows(self.headers.get("Authorization"), peer):
                    return True
                server._on_unauthenticated()
                self.close_connection = True  # the body stays unread
                message = "the audit endpoint needs the API server's bearer token or client certificate"
                self.send_all(
                    401,
                    {"Content-Type": "application/json", "WWW-Authenticate": 'Bearer realm="clb-direct-relay"'},
                    json.dumps({"error": "Unauthorized", "message": message}).encode(),
                )
                return False

            def do_POST(self) -> None:
                if not self._authenticated():
                    return
                body = self.read_body()
                if body is None:
                    return
                try:
                    payload = json.loads(body)
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    self.send_json(400, {"error": "InvalidInput", "message": f"body is not JSON: {exc}"})
                    return
                except RecursionError:
                    self.send_json(400, {"error": "InvalidInput", "message": "body is nested too deeply"})
                    return
                if not isinstance(payload, dict) or payload.get("kind") != "EventList":
                    self.send_json(400, {"error": "InvalidInput", "message": "expected an audit.k8s.io/v1 EventList"})
                    return
                receipt = server._on_event_list(payload)
                answer = {"kept": receipt.kept, "rejected": receipt.rejected}
                if receipt.ticket.wait(server.ack_timeout_s):
                    self.send_json(200, answer)
                    return
                message = f"events not yet delivered to the router within {server.ack_timeout_s:g} s; retry"
                self.send_json(503, {**answer, "error": "NotDelivered", "message": message})

        return Handler
