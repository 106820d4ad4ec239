"""Kept-alive requests to the local runtime are answered without the Nagle delay (issue 11).

Structural, not timed: the accepted socket has TCP_NODELAY set, and each response leaves in exactly
one write (status line, headers and body together), so no small body segment waits for the
client's delayed ACK of the header segment. The before/after latency is a `make bench` row
(`runtime keep-alive`).
"""

from __future__ import annotations

import http.client
import socket
import socketserver
from collections.abc import Iterator
from typing import Any

import pytest

from emulators.runtime.runtime import FunctionSpec, LocalRuntime
from limited_http import LimitedHTTPServer

MODULE = "tests.integration.runtime.sample_functions"


@pytest.fixture
def runtime() -> Iterator[LocalRuntime]:
    rt = LocalRuntime(functions=[FunctionSpec("echo", entry=f"{MODULE}:echo")])
    rt.start()
    yield rt
    rt.stop()


def test_each_kept_alive_response_is_one_write_on_a_nodelay_socket(
    runtime: LocalRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[int] = []
    nodelay: list[int] = []
    original_write = socketserver._SocketWriter.write
    original_finish = LimitedHTTPServer.finish_request

    def counting_write(self: Any, data: Any) -> int:
        writes.append(len(data))
        return original_write(self, data)

    def recording_finish(self: LimitedHTTPServer, request: Any, client_address: Any) -> None:
        nodelay.append(request.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        original_finish(self, request, client_address)

    monkeypatch.setattr(socketserver._SocketWriter, "write", counting_write)
    monkeypatch.setattr(LimitedHTTPServer, "finish_request", recording_finish)
    host, port = runtime.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        for i in range(3):
            connection.request("POST", "/echo/x", body=b'{"i": %d}' % i)
            response = connection.getresponse()
            assert response.status == 200
            response.read()
    finally:
        connection.close()
    assert nodelay == [1], "one kept-alive connection, with TCP_NODELAY set"
    assert len(writes) == 3, f"each response must be a single write; got writes of {writes} bytes"
