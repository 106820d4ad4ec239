"""Every HTTP server we run (the relay, the local runtime) holds its limits against hostile clients.

One idle TCP connection must not stall a TLS server's accept loop (the handshake runs off the accept
path, with a deadline); a body over the cap gets 413 without being read; a lying or negative
Content-Length and a slow body get 408/400 instead of a hung worker; hundreds of idle connections pin
at most `max_connections` threads and the server keeps answering. Both servers are driven over raw
sockets, so nothing in a client library hides what the server does.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from emulators.cluster.tls import CertificateAuthority
from emulators.runtime.runtime import FunctionSpec, LocalRuntime
from limited_http import HttpLimits
from relay.app import Relay
from relay.auth import AuditAuth
from relay.batcher import Batcher, BatcherConfig
from tests.support.polling import eventually

LIMITS = HttpLimits(max_body_bytes=64 * 1024, read_timeout_s=1.0, max_connections=8)
MODULE = "tests.integration.runtime.sample_functions"


@dataclass
class Target:
    host: str
    port: int
    tls: ssl.SSLContext | None
    ok_path: str  # a GET that answers 200
    post_path: str  # a POST that reads its body


def _router_down(_url: str, _body: bytes, _headers: dict[str, str], _timeout_s: float) -> int:
    raise OSError("no router in this test")


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority("http limits test CA")


def _relay(tmp: Path, ca: CertificateAuthority, *, tls: bool) -> Relay:
    kwargs: dict[str, str] = {}
    if tls:
        pair = ca.issue(["127.0.0.1"])
        (tmp / "tls.crt").write_bytes(pair.cert_pem)
        (tmp / "tls.key").write_bytes(pair.key_pem)
        kwargs = {"tls_cert": str(tmp / "tls.crt"), "tls_key": str(tmp / "tls.key")}
    batcher = Batcher(BatcherConfig(router_url="http://127.0.0.1:9/", hmac_key=b"k"), post=_router_down)
    return Relay(
        batcher=batcher,
        sources=["audit"],
        http_limits=LIMITS,
        audit_auth=AuditAuth(allow_unauthenticated=True),
        **kwargs,  # type: ignore[arg-type]
    )


def _client_context(ca: CertificateAuthority) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=ca.cert_pem.decode())
    return context


@pytest.fixture(params=["relay-http", "relay-tls", "runtime-http", "runtime-tls"])
def target(request: pytest.FixtureRequest, tmp_path: Path, ca: CertificateAuthority) -> Iterator[Target]:
    kind: str = request.param
    tls = kind.endswith("tls")
    if kind.startswith("relay"):
        relay = _relay(tmp_path, ca, tls=tls)
        relay.start()
        host, port = relay.server.address
        try:
            yield Target(host, port, _client_context(ca) if tls else None, "/healthz", "/")
        finally:
            relay.stop()
        return
    pair = ca.issue(["127.0.0.1"])
    runtime = LocalRuntime(
        functions=[FunctionSpec("echo", entry=f"{MODULE}:echo")],
        tls_provider=lambda: (pair.cert_pem, pair.key_pem),
        http_limits=LIMITS,
    )
    runtime.start()
    try:
        url = runtime.start_https() if tls else runtime.url
        port = int(url.rsplit(":", 1)[1])
        yield Target("127.0.0.1", port, _client_context(ca) if tls else None, "/_runtime/stats", "/echo")
    finally:
        runtime.stop()


def _connect(target: Target, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection((target.host, target.port), timeout=timeout)
    if target.tls is not None:
        return target.tls.wrap_socket(sock, server_hostname=target.host)
    return sock


def _read_response(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    if not data:
        return 0, b""
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, rest


def _request(target: Target, raw: bytes) -> tuple[int, bytes]:
    with _connect(target) as sock:
        sock.sendall(raw)
        return _read_response(sock)


def _get_ok(target: Target) -> bool:
    raw = f"GET {target.ok_path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    try:
        status, _ = _request(target, raw)
    except OSError:  # refused while full (a TLS server just closes): not an answer yet
        return False
    return status == 200


def _post_head(target: Target, length: str) -> bytes:
    return f"POST {target.post_path} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode()


def test_an_idle_connection_does_not_block_others(target: Target) -> None:
    idle = socket.create_connection((target.host, target.port), timeout=10)  # no bytes, no handshake
    try:
        result: list[bool] = []
        worker = threading.Thread(target=lambda: result.append(_get_ok(target)), daemon=True)
        worker.start()
        worker.join(timeout=20)
        assert result == [True], "a request behind one idle connection got no answer"
    finally:
        idle.close()


def test_the_idle_connection_is_closed_after_the_read_timeout(target: Target) -> None:
    idle = socket.create_connection((target.host, target.port), timeout=10)
    try:
        assert idle.recv(1) == b"", "the server kept an idle connection open past its read timeout"
    finally:
        idle.close()


def test_a_body_over_the_cap_gets_413_unread(target: Target) -> None:
    status, body = _request(target, _post_head(target, str(LIMITS.max_body_bytes + 1)))
    assert status == 413
    assert b"max_body_bytes" in body or b"limit" in body


@pytest.mark.parametrize("length", ["-1", "abc", "1e3"])
def test_a_malformed_content_length_gets_400(target: Target, length: str) -> None:
    status, body = _request(target, _post_head(target, length) + b"{}")
    assert status == 400
    assert b"Content-Length" in body


def test_a_lying_content_length_gets_408(target: Target) -> None:
    status, _ = _request(target, _post_head(target, "100") + b'{"a": 1}')
    assert status == 408


def test_slow_headers_get_408(target: Target) -> None:
    with _connect(target) as sock:
        sock.sendall(f"GET {target.ok_path} HTTP/1.1\r\nHost: x\r\n".encode())  # never finishes the headers
        status, _ = _read_response(sock)
    assert status == 408


def test_hundreds_of_idle_connections_pin_bounded_threads(target: Target) -> None:
    before = threading.active_count()
    idle: list[socket.socket] = []
    try:
        for _ in range(120):
            try:
                idle.append(socket.create_connection((target.host, target.port), timeout=10))
            except OSError:
                break
        assert len(idle) >= 50
        assert threading.active_count() <= before + LIMITS.max_connections + 2
        # Once the read timeout closes the idle ones the server answers again.
        eventually(lambda: _get_ok(target), "a 200 while hundreds of idle connections were open")
    finally:
        for sock in idle:
            sock.close()


def test_a_valid_request_still_works(target: Target) -> None:
    body = json.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": []}).encode()
    raw = _post_head(target, str(len(body))) + body
    status, _ = _request(target, raw)
    assert status in (200, 202)
