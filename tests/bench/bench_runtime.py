"""Local runtime keep-alive latency (issue 11): one write per response with TCP_NODELAY vs the previous two writes.

Side A is the local runtime serving a small function over one kept-alive connection (`http.client`).
Side B is the response pattern the runtime had before, rebuilt on the stdlib server: headers flushed
by `end_headers()`, then the body in a second write, Nagle on. B does less work per request than A
(no function call), so the gap is the Nagle/delayed-ACK wait alone (about 40 ms on Linux loopback).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from emulators.runtime.runtime import FunctionSpec, LocalRuntime
from tests.bench.common import Row

BODY = json.dumps({"path": "/echo/x", "body": "{}", "request_id": "r" * 36}).encode()


class _TwoWriteHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()  # first write: status line and headers
        self.wfile.write(BODY)  # second write: waits for the ACK of the first (Nagle)


def _mean_ms(host: str, port: int, requests: int) -> float:
    connection = http.client.HTTPConnection(host, port, timeout=30)
    try:
        connection.request("POST", "/echo/x", body=b"{}")  # warm: connect and first request
        connection.getresponse().read()
        started = time.perf_counter()
        for _ in range(requests):
            connection.request("POST", "/echo/x", body=b"{}")
            connection.getresponse().read()
        return (time.perf_counter() - started) * 1000 / requests
    finally:
        connection.close()


def run(quick: bool) -> list[Row]:
    requests = 20 if quick else 100
    runtime = LocalRuntime(functions=[FunctionSpec("echo", entry="tests.integration.runtime.sample_functions:echo")])
    runtime.start()
    try:
        host, port = runtime.url.removeprefix("http://").split(":")
        a = _mean_ms(host, int(port), requests)
    finally:
        runtime.stop()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TwoWriteHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        b = _mean_ms("127.0.0.1", int(server.server_address[1]), requests)
    finally:
        server.shutdown()
        server.server_close()
    return [
        Row(
            "runtime keep-alive",
            f"{requests} POSTs on one kept-alive connection",
            "ms per request",
            "one write + TCP_NODELAY",
            a,
            "headers then body, Nagle on",
            b,
            {"requests": requests},
        )
    ]
