"""`ClbEmulatorServer`: the CLB API emulator over real HTTP, for integration tests, the demo and the CLI.

POST `/` serves the CLB 2018-03-17 API through the same dispatcher as the `responses` fake (`api.py`);
the SDK reaches it with `HttpProfile(protocol="http", endpoint="127.0.0.1:<port>")`. Unsigned admin
JSON endpoints under `/_emulator/` (local use only): `POST reset`, `POST seed`, `GET state`,
`GET calls`, `GET|POST|DELETE faults`, `GET|POST config`. A drop-response fault closes the connection
without an answer, which the SDK reports as `ClientNetworkError`; so does a client's own request timeout
on a hung call (`hang_s`), which the server then abandons unapplied once it sees the client close.
"""

from __future__ import annotations

import contextlib
import json
import logging
import select
import socket
import threading
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from emulators.clb.api import ClbApi, RawRequest
from emulators.clb.errors import ClbApiError
from emulators.clb.model import ClbModel
from emulators.clb.signing import CredentialsInput

ADMIN_PREFIX = "/_emulator/"
_log = logging.getLogger(__name__)


class _AdminError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without TCP_NODELAY, Nagle + delayed ACK add ~40 ms per call.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("clb-emulator %s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _route(self, method: str) -> None:
        url = urlsplit(self.path)
        body = self._body()
        if url.path.startswith(ADMIN_PREFIX):
            self._admin(method, url.path[len(ADMIN_PREFIX) :], parse_qs(url.query), body)
            return
        if url.path != "/":
            self._send(404, b'{"error": "not found"}', {"Content-Type": "application/json"})
            return
        raw = RawRequest(method, url.path, url.query, dict(self.headers.items()), body, caller_gone=self._client_gone)
        reply = self.server.api.handle(raw)
        if reply.drop:
            # Close without a byte of answer: the client sees the connection reset after the change applied.
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(reply.status, reply.body, reply.headers)

    def _client_gone(self) -> bool:
        """True once the client closed its end (it gave up waiting): readable, with nothing left to read."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _admin(self, method: str, name: str, query: dict[str, list[str]], body: bytes) -> None:
        try:
            result = self._admin_result(method, name, query, body)
            status = 200
        except _AdminError as exc:
            status, result = exc.status, {"error": {"code": exc.code, "message": exc.message}}
        except ClbApiError as exc:
            status, result = 400, {"error": {"code": exc.code, "message": exc.message}}
        self._send(status, json.dumps(result).encode("utf-8"), {"Content-Type": "application/json"})

    def _admin_result(self, method: str, name: str, query: dict[str, list[str]], body: bytes) -> Any:
        model = self.server.model
        route = (method, name)
        if route == ("POST", "reset"):
            model.reset()
            return {"ok": True}
        if route == ("POST", "seed"):
            model.seed(_json_object(body))
            return {"ok": True, "load_balancers": len(model.export_state()["load_balancers"])}
        if route == ("GET", "state"):
            return model.export_state()
        if route == ("GET", "calls"):
            return model.calls()
        if route == ("GET", "faults"):
            return {"faults": model.faults.rules()}
        if route == ("POST", "faults"):
            payload = _json_value(body)
            for rule in payload if isinstance(payload, list) else [payload]:
                if not isinstance(rule, dict):
                    raise _AdminError(400, "InvalidParameterValue", "each fault rule must be a JSON object")
                model.set_fault(rule)
            return {"faults": model.faults.rules()}
        if route == ("DELETE", "faults"):
            model.clear_faults(query.get("action", [None])[0])
            return {"faults": model.faults.rules()}
        if route == ("GET", "config"):
            return asdict(model.config)
        if route == ("POST", "config"):
            return asdict(model.update_config(_json_object(body)))
        raise _AdminError(404, "NotFound", f"no admin endpoint {method} {ADMIN_PREFIX}{name}")


def _json_value(body: bytes) -> Any:
    try:
        return json.loads(body or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _AdminError(400, "InvalidParameter.FormatError", f"body is not JSON: {exc}") from None


def _json_object(body: bytes) -> dict[str, Any]:
    data = _json_value(body)
    if not isinstance(data, dict):
        raise _AdminError(400, "InvalidParameter.FormatError", "body must be a JSON object")
    return data


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], model: ClbModel, api: ClbApi) -> None:
        super().__init__(address, _Handler)
        self.model = model
        self.api = api


class ClbEmulatorServer:
    """`start()` binds (port 0 picks a free port, read it from `.port`) and serves on a daemon thread."""

    def __init__(
        self,
        model: ClbModel,
        host: str = "127.0.0.1",
        port: int = 0,
        credentials: CredentialsInput | None = None,
        signature_check: bool = True,
    ) -> None:
        self.model = model
        self.host = host
        self.port = port
        self.api = ClbApi(model, credentials, signature_check=signature_check)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def endpoint(self) -> str:
        """What to pass as `HttpProfile(endpoint=...)` (with `protocol="http"`)."""
        return f"{self.host}:{self.port}"

    def start(self) -> ClbEmulatorServer:
        if self._server is not None:
            raise RuntimeError("ClbEmulatorServer is already running; call stop() first")
        self._server = _Server((self.host, self.port), self.model, self.api)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="clb-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> ClbEmulatorServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
