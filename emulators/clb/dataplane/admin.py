"""Admin HTTP endpoints of the dataplane: notification switch and log, per-listener forwarding stats.

`ClbEmulator` (`app.py`) serves these on their own small server next to the API server, because the
API server (`server.py`) has a fixed set of `/_emulator/` routes. Unsigned JSON, loopback use only:

- `GET  /_emulator/notifications` -> the notifier's state: enabled, url, queue, counters, delivery log.
- `POST /_emulator/notifications` `{"enabled": bool, "url": str, "secret": str}` (all optional) ->
  switches delivery at run time and returns the new state; `enabled: false` exercises the polling path.
- `GET  /_emulator/dataplane` -> per listener: VIP address, eligible targets, connections served/active
  per target, resets for lack of a target; plus the notifier's state.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from emulators.clb.dataplane.plane import DataPlane

ADMIN_PREFIX = "/_emulator/"


class _AdminRequestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _AdminHttpServer

    def log_message(self, *_args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._respond("GET")

    def do_POST(self) -> None:
        self._respond("POST")

    def _respond(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        try:
            status, result = 200, self._route(method, self.path.split("?", 1)[0], body)
        except _AdminRequestError as exc:
            status, result = exc.status, {"error": str(exc)}
        payload = json.dumps(result).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _route(self, method: str, path: str, body: bytes) -> Any:
        plane = self.server.plane
        if (method, path) == ("GET", ADMIN_PREFIX + "notifications"):
            return plane.notifier.status()
        if (method, path) == ("POST", ADMIN_PREFIX + "notifications"):
            changes = _notification_changes(body)
            plane.notifier.configure(**changes)
            return plane.notifier.status()
        if (method, path) == ("GET", ADMIN_PREFIX + "dataplane"):
            return plane.status()
        raise _AdminRequestError(404, f"no dataplane admin endpoint {method} {path}")


def _notification_changes(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _AdminRequestError(400, f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _AdminRequestError(400, 'body must be a JSON object like {"enabled": false}')
    unknown = set(data) - {"enabled", "url", "secret"}
    if unknown:
        raise _AdminRequestError(400, f"unknown fields {sorted(unknown)}; allowed: enabled, url, secret")
    if "enabled" in data and not isinstance(data["enabled"], bool):
        raise _AdminRequestError(400, '"enabled" must be true or false')
    for name in ("url", "secret"):
        if name in data and not isinstance(data[name], str):
            raise _AdminRequestError(400, f'"{name}" must be a string ("" clears it)')
    if data.get("url") and not str(data["url"]).startswith(("http://", "https://")):
        raise _AdminRequestError(400, f'"url" must be an http(s) URL, got {data["url"]!r}')
    return data


class _AdminHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], plane: DataPlane) -> None:
        super().__init__(address, _Handler)
        self.plane = plane


class DataplaneAdminServer:
    """`start()` binds (port 0 = any free port, then read `.port`) and serves on a daemon thread."""

    def __init__(self, plane: DataPlane, host: str = "127.0.0.1", port: int = 0) -> None:
        self.plane = plane
        self.host = host
        self.port = port
        self._server: _AdminHttpServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("dataplane admin server already running; call stop() first")
        self._server = _AdminHttpServer((self.host, self.port), self.plane)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="clb-dataplane-admin", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None
