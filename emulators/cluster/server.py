"""The cluster simulator's HTTPS API server, spoken to by the real ``kubernetes`` Python client.

Started by ``clb-direct emulate cluster`` and by tests: ``ClusterApiServer(store, host, port, tls)``
serves the object store on a daemon thread (``start()``/``stop()``, ``url``), authenticates bearer
tokens, answers ``/version`` and discovery, runs each verb through ``api_handlers`` and streams watches
as chunked one-JSON-per-line bodies with BOOKMARKs, ``timeoutSeconds`` and in-stream 410 ERRORs.
TLS handshakes run on the per-connection thread so a slow client cannot stall the accept loop.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from emulators.cluster import api_handlers, events, rbac
from emulators.cluster.context import RequestInfo, current_request
from emulators.cluster.errors import ApiError, internal_error, status_body
from emulators.cluster.kubeconfig import write_kubeconfig
from emulators.cluster.routing import Route, parse_path
from emulators.cluster.store import ObjectStore
from emulators.cluster.tls import CertificateAuthority, KeyPair
from emulators.cluster.watch import WatchStream

SSAR_PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"

log = logging.getLogger(__name__)

DEFAULT_VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.1-tke.1",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-05-15T00:00:00Z",
    "goVersion": "go1.24.2",
    "compiler": "gc",
    "platform": "linux/amd64",
}


class ClusterApiServer:
    """A local Kubernetes API over HTTPS (or plain HTTP when ``tls`` is ``None``)."""

    def __init__(
        self,
        store: ObjectStore,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: KeyPair | ssl.SSLContext | None = None,
        *,
        tokens: Mapping[str, str] | None = None,
        version: Mapping[str, str] | None = None,
        bookmark_interval_s: float = 5.0,
        default_watch_timeout_s: float = 1800.0,
        ca_pem: bytes | None = None,
    ) -> None:
        self.store = store
        self._host = host
        self._port = port
        self._ssl = tls.server_context() if isinstance(tls, KeyPair) else tls
        self.tokens = dict(tokens) if tokens is not None else {secrets.token_urlsafe(24): "system:admin"}
        self.version = {**DEFAULT_VERSION, **(version or {})}
        self.bookmark_interval_s = bookmark_interval_s
        self.default_watch_timeout_s = default_watch_timeout_s
        self.ca_pem = ca_pem
        self.stopping = threading.Event()
        self._streams: set[WatchStream] = set()
        self._lock = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def self_signed(
        cls, store: ObjectStore, host: str = "127.0.0.1", port: int = 0, **options: Any
    ) -> ClusterApiServer:
        """A server with a fresh CA and a serving certificate for ``host`` (``ca_pem`` is set)."""
        ca = CertificateAuthority()
        pair = ca.issue([host, "localhost"] if host != "localhost" else [host])
        return cls(store, host, port, pair, ca_pem=ca.cert_pem, **options)

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the cluster API server is not started; call start() first")
        scheme = "https" if self._ssl is not None else "http"
        return f"{scheme}://{self._host}:{self._httpd.server_address[1]}"

    @property
    def token(self) -> str:
        return next(iter(self.tokens))

    def start(self) -> ClusterApiServer:
        httpd = _HTTPServer((self._host, self._port), _Handler)
        httpd.api = self
        httpd.ssl_context = self._ssl
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, name="cluster-api", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: end every watch stream, close open connections, join the accept thread."""
        self.stopping.set()
        with self._lock:
            streams = list(self._streams)
        for stream in streams:
            stream.close()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.close_connections()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def write_kubeconfig(self, path: str | Path) -> Path:
        if self.ca_pem is None and self._ssl is not None:
            raise RuntimeError("no CA certificate known for this server; construct it with ca_pem= or self_signed()")
        return write_kubeconfig(path, self.url, self.ca_pem or b"", self.token)

    def authenticate(self, header: str | None) -> str:
        if header and header.startswith("Bearer "):
            user = self.tokens.get(header[len("Bearer ") :].strip())
            if user is not None:
                return user
        raise ApiError(status_body(401, "Unauthorized", "Unauthorized"))

    def track(self, stream: WatchStream, *, add: bool) -> None:
        with self._lock:
            if add:
                self._streams.add(stream)
            else:
                self._streams.discard(stream)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    api: ClusterApiServer
    ssl_context: ssl.SSLContext | None

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()

    def finish_request(self, request: Any, client_address: Any) -> None:
        connection = request
        try:
            if self.ssl_context is not None:
                connection = self.ssl_context.wrap_socket(request, server_side=True)
            with self._conn_lock:
                self._connections.add(connection)
            self.RequestHandlerClass(connection, client_address, self)  # type: ignore[arg-type]
        except (OSError, ssl.SSLError) as exc:
            log.debug("cluster API connection from %s ended: %s", client_address, exc)
        finally:
            with self._conn_lock:
                self._connections.discard(connection)
            if connection is not request:
                connection.close()

    def close_connections(self) -> None:
        with self._conn_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("cluster API request from %s failed", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("cluster API %s " + format, self.client_address[0], *args)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _send_json(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        api = self.server.api
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        token = current_request.set(
            RequestInfo(self.path, self.headers.get("User-Agent", "")[:1024], (self.client_address[0],))
        )
        try:
            user = api.authenticate(self.headers.get("Authorization"))
            if url.path.rstrip("/") == "/version" and method == "GET":
                self._send_json(200, api.version)
                return
            if url.path.rstrip("/") == SSAR_PATH and method == "POST":
                review = json.loads(raw or b"{}")
                self._send_json(201, rbac.self_subject_access_review(api.store, user, review))
                return
            route = parse_path(url.path)
            if route is None:
                raise ApiError(status_body(404, "NotFound", "the server could not find the requested resource", {}))
            if isinstance(route, dict):
                self._send_json(200, route)
                return
            if method == "GET" and query.get("watch") in ("true", "1") and route.name is None:
                self._watch(route, query)
                return
            content_type = self.headers.get("Content-Type", "")
            body = api_handlers.decode_body(raw, content_type, patch=method == "PATCH")
            code, payload = api_handlers.handle(
                api.store, method, route, query, body, content_type=content_type, user=user
            )
            self._send_json(code, payload)
        except ApiError as error:
            self._send_json(error.code, error.status)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:
            log.exception("cluster API %s %s failed", method, self.path)
            self._send_json(500, internal_error(f"{type(exc).__name__}: {exc}").status)
        finally:
            current_request.reset(token)

    def _write_chunk(self, payload: Any) -> None:
        data = json.dumps(payload).encode() + b"\n"
        self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _watch(self, route: Route, query: dict[str, str]) -> None:
        api, store = self.server.api, self.server.api.store
        stream = store.watch(
            route.rtype.plural,
            route.namespace,
            query.get("resourceVersion"),
            query.get("labelSelector"),
            query.get("fieldSelector"),
        )
        api.track(stream, add=True)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        timeout = float(query.get("timeoutSeconds") or api.default_watch_timeout_s)
        deadline = time.monotonic() + timeout
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        next_bookmark = time.monotonic() + api.bookmark_interval_s if bookmarks else math.inf
        try:
            while not api.stopping.is_set():
                now = time.monotonic()
                if now >= deadline:
                    break
                if now >= next_bookmark:
                    version = store.bookmark_version(stream)
                    if version is not None:
                        self._write_chunk(self._bookmark(route, version))
                    next_bookmark = now + api.bookmark_interval_s
                event = stream.next_event(max(0.0, min(deadline, next_bookmark, now + 1.0) - now))
                if event is None:
                    if stream.closed:
                        break
                    continue
                if route.events_v1 and event["type"] != "ERROR":
                    event["object"] = events.from_core(event["object"])
                self._write_chunk(event)
                if event["type"] == "ERROR":
                    break
            self.wfile.write(b"0\r\n\r\n")
        except (OSError, ssl.SSLError):
            pass  # the client went away; nothing left to tell it
        finally:
            stream.close()
            api.track(stream, add=False)
            self.close_connection = True

    @staticmethod
    def _bookmark(route: Route, version: str) -> dict[str, Any]:
        return {
            "type": "BOOKMARK",
            "object": {
                "kind": route.rtype.kind,
                "apiVersion": route.rtype.api_version,
                "metadata": {"resourceVersion": version},
            },
        }
