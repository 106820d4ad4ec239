"""One health probe against one backend, as the CLB sends it: TCP connect, HTTP(S) request, or CUSTOM.

Called by the health checker (`checker.py`) on its asyncio loop, so hundreds of probes run concurrently
on one thread without blocking each other. Each probe answers only "passed or not" within the listener's
`TimeOut`; the state machine in `health.py` turns those answers into Alive/Dead.

Check types: `TCP` = the three-way handshake completes; `HTTP`/`HTTPS` = the status line arrives and its
class is in the `HttpCode` bitmask (request: `HttpCheckMethod HttpCheckPath HttpVersion`, `Host:` =
`HttpCheckDomain`, or the backend IP when empty); `CUSTOM` = send `SendContext` (TEXT or HEX) and pass if
the reply starts with `RecvContext` (or on connect alone when no reply is expected); `GRPC` is approximated
by a TCP connect; `PING` (UDP listeners) passes, because every loopback address answers ICMP echo.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl

from emulators.clb.dataplane.health import HealthCheckSpec

USER_AGENT = "clb-emulator-healthcheck/1.0"
_MAX_REPLY = 4096


async def probe(ip: str, port: int, spec: HealthCheckSpec) -> bool:
    """Run one probe; any error or a timeout counts as a failed probe, never an exception."""
    if spec.check_type == "PING":
        return True
    try:
        return await asyncio.wait_for(_probe(ip, port, spec), timeout=spec.timeout_s)
    except (OSError, asyncio.TimeoutError, ValueError, EOFError, asyncio.IncompleteReadError):
        return False


async def _probe(ip: str, port: int, spec: HealthCheckSpec) -> bool:
    tls: ssl.SSLContext | None = None
    if spec.check_type == "HTTPS":
        # The CLB does not verify backend certificates on health checks.
        tls = ssl.create_default_context()
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    reader, writer = await asyncio.open_connection(ip, port, ssl=tls)
    try:
        if spec.check_type in ("HTTP", "HTTPS"):
            return await _http_exchange(reader, writer, ip, spec)
        if spec.check_type == "CUSTOM":
            return await _custom_exchange(reader, writer, spec)
        return True
    finally:
        writer.close()
        with contextlib.suppress(OSError, asyncio.TimeoutError, ssl.SSLError):
            await writer.wait_closed()


async def _http_exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ip: str, spec: HealthCheckSpec
) -> bool:
    host = spec.http_domain or ip
    request = (
        f"{spec.http_method} {spec.http_path} {spec.http_version}\r\n"
        f"Host: {host}\r\nUser-Agent: {USER_AGENT}\r\nConnection: close\r\n\r\n"
    )
    writer.write(request.encode("latin-1"))
    await writer.drain()
    status_line = await reader.readline()
    parts = status_line.decode("latin-1").split()
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        return False
    return spec.accepts_status(int(parts[1]))


async def _custom_exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, spec: HealthCheckSpec) -> bool:
    if spec.send_context:
        writer.write(_context_bytes(spec.send_context, spec.context_type))
        await writer.drain()
    if not spec.recv_context:
        return True
    expected = _context_bytes(spec.recv_context, spec.context_type)
    received = b""
    while len(received) < len(expected):
        chunk = await reader.read(_MAX_REPLY)
        if not chunk:
            break
        received += chunk
    return received.startswith(expected)


def _context_bytes(text: str, context_type: str) -> bytes:
    return bytes.fromhex(text) if context_type == "HEX" else text.encode()
