"""The forwarding proxy: each TCP/HTTP listener listens on `VIP:port` and relays connections to backends.

Started by `DataPlane` (`plane.py`) on its own asyncio loop thread. The listener table follows the
model (re-read on each model change and on every tick): a new listener starts listening on its loopback
VIP (127.1.0.N; Linux accepts binding any 127/8 address), a deleted listener or CLB stops listening.
Each accepted connection goes to one backend that is eligible — health `Alive` (or `Close`: with health
checks off the CLB forwards to every backend) and weight > 0 — chosen by the listener's scheduler
(`balancer.py`); bytes are pumped both ways with half-close passed through. With no eligible backend,
or when the chosen backend refuses, the client connection is reset at once, as an L4 CLB does. A backend
that turns Dead or weight 0 gets no new connections; its existing connections are left alone. HTTP
listeners are relayed at L4, which serves HTTP/1.x clients unchanged. The last connections are kept
(`connections()`: client address, backend, outcome) so a tool can say which backend a failed request hit.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

from emulators.clb.dataplane.balancer import TargetPicker
from emulators.clb.dataplane.interfaces import DataplaneModel
from emulators.clb.dataplane.loop_thread import LoopThread
from emulators.clb.views import HEALTH_ALIVE, HEALTH_CLOSE, ListenerView

log = logging.getLogger("clb_emulator.proxy")

FORWARDED_PROTOCOLS = frozenset({"TCP", "HTTP"})
_CHUNK = 64 * 1024
CONNECTION_LOG_SIZE = 50_000

Backend = tuple[str, int]


@dataclass(frozen=True)
class ConnectionRecord:
    """One client connection as the proxy handled it: which backend it went to and how it ended.

    `outcome`: `served` (relayed, both sides closed normally), `reset` (the backend reset or aborted the
    connection mid-way), `refused` (the chosen backend did not accept), `no-backend` (nothing eligible).
    Tools match a client's failed request to its backend by the client's address (`client_port`).
    """

    at: float
    listener_id: str
    client_ip: str
    client_port: int
    backend: str  # "ip:port", "" for no-backend
    outcome: str


@dataclass
class _Listening:
    view: ListenerView
    server: asyncio.AbstractServer
    picker: TargetPicker[Backend]
    active: dict[Backend, int] = field(default_factory=dict)
    served: dict[Backend, int] = field(default_factory=dict)
    refused: int = 0


def eligible_backends(view: ListenerView) -> dict[Backend, int]:
    """Backends a listener may send new connections to, with their weights."""
    return {
        (target.ip, target.port): target.weight
        for target in view.targets
        if target.weight > 0 and target.health in (HEALTH_ALIVE, HEALTH_CLOSE)
    }


class ForwardingProxy:
    def __init__(self, model: DataplaneModel, *, tick_s: float = 1.0, connect_timeout_s: float = 5.0) -> None:
        self._model = model
        self._tick_s = tick_s
        self._connect_timeout_s = connect_timeout_s
        self._listening: dict[str, _Listening] = {}
        self._connections: set[asyncio.Task[None]] = set()
        self._loop = LoopThread("clb-forwarding-proxy")
        self._sync_pending = False
        self._log: collections.deque[ConnectionRecord] = collections.deque(maxlen=CONNECTION_LOG_SIZE)
        self._log_lock = threading.Lock()

    def connections(self, since: float = 0.0) -> list[ConnectionRecord]:
        """The most recent connections (up to CONNECTION_LOG_SIZE) handled at or after `since` (epoch s)."""
        with self._log_lock:
            return [r for r in self._log if r.at >= since]

    def _record(self, listener_id: str, peer: object, backend: Backend | None, outcome: str) -> None:
        ip, port = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) and len(peer) >= 2 else ("", 0)
        where = f"{backend[0]}:{backend[1]}" if backend else ""
        with self._log_lock:
            self._log.append(ConnectionRecord(time.time(), listener_id, ip, port, where, outcome))

    def start(self) -> None:
        self._loop.start()
        self._loop.call(self._startup)

    def stop(self) -> None:
        self._loop.stop(self._shutdown)

    def request_sync(self) -> None:
        """Re-read the model soon; safe from any thread (this is the model's subscribe callback)."""
        if self._sync_pending:
            return
        self._sync_pending = True
        self._loop.call_soon(self._sync_requested)

    def sync_now(self) -> None:
        """Re-read the model and wait until listeners and pickers reflect it."""

        async def sync() -> None:
            await self._sync()

        self._loop.call(sync)

    def stats(self) -> dict[str, dict[str, object]]:
        """Per listener: bound address, connections served and active per backend, resets for lack of one."""

        async def read() -> dict[str, dict[str, object]]:
            return {
                listener_id: {
                    "address": f"{entry.view.vip}:{entry.view.port}",
                    "eligible": [f"{ip}:{port}" for ip, port in entry.picker.candidates],
                    "served": {f"{ip}:{port}": n for (ip, port), n in entry.served.items()},
                    "active": {f"{ip}:{port}": n for (ip, port), n in entry.active.items() if n},
                    "refused": entry.refused,
                }
                for listener_id, entry in self._listening.items()
            }

        return self._loop.call(read)

    async def _startup(self) -> None:
        asyncio.get_running_loop().create_task(self._tick_forever())

    async def _tick_forever(self) -> None:
        while True:
            await self._sync_logging_errors()
            await asyncio.sleep(self._tick_s)

    def _sync_requested(self) -> None:
        self._sync_pending = False
        asyncio.get_running_loop().create_task(self._sync_logging_errors())

    async def _sync_logging_errors(self) -> None:
        # The proxy must outlive a bad snapshot or a busy port: log it and try again on the next tick.
        try:
            await self._sync()
        except Exception:
            log.exception("proxy.sync_failed")

    async def _sync(self) -> None:
        desired = {
            view.listener_id: view
            for view in self._model.dataplane_snapshot()
            if view.protocol.upper() in FORWARDED_PROTOCOLS
        }
        for listener_id in list(self._listening):
            entry = self._listening[listener_id]
            view = desired.get(listener_id)
            if view is None or (view.vip, view.port) != (entry.view.vip, entry.view.port):
                del self._listening[listener_id]
                entry.server.close()
                log.info("listener.stopped listener=%s address=%s:%d", listener_id, entry.view.vip, entry.view.port)
        for listener_id, view in desired.items():
            entry_or_none = self._listening.get(listener_id)
            if entry_or_none is None:
                entry_or_none = await self._listen(view)
                if entry_or_none is None:
                    continue
            entry_or_none.view = view
            entry_or_none.picker.update(eligible_backends(view), view.scheduler)

    async def _listen(self, view: ListenerView) -> _Listening | None:
        listener_id = view.listener_id

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._handle(listener_id, reader, writer)

        try:
            server = await asyncio.start_server(handle, host=view.vip, port=view.port, reuse_address=True)
        except OSError as exc:
            log.warning(
                "listener.bind_failed listener=%s address=%s:%d error=%s", listener_id, view.vip, view.port, exc
            )
            return None
        log.info("listener.started listener=%s address=%s:%d", listener_id, view.vip, view.port)
        entry = _Listening(view=view, server=server, picker=TargetPicker(view.scheduler))
        self._listening[listener_id] = entry
        return entry

    async def _handle(self, listener_id: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._forward(listener_id, reader, writer)
        finally:
            self._connections.discard(task)

    async def _forward(self, listener_id: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        entry = self._listening.get(listener_id)
        peer = writer.get_extra_info("peername")
        client_ip = peer[0] if isinstance(peer, tuple) else ""
        backend = None if entry is None else entry.picker.pick(entry.active, client_ip)
        if entry is None or backend is None:
            if entry is not None:
                entry.refused += 1
            self._record(listener_id, peer, None, "no-backend")
            _reset(writer)
            return
        entry.active[backend] = entry.active.get(backend, 0) + 1
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            try:
                upstream_reader, upstream = await asyncio.wait_for(
                    asyncio.open_connection(*backend), timeout=self._connect_timeout_s
                )
            except (OSError, asyncio.TimeoutError):
                entry.refused += 1
                self._record(listener_id, peer, backend, "refused")
                _reset(writer)
                return
            upstream_writer = upstream
            entry.served[backend] = entry.served.get(backend, 0) + 1
            clean = await asyncio.gather(
                _pump(reader, upstream),
                _pump(upstream_reader, writer),
                return_exceptions=True,
            )
            self._record(listener_id, peer, backend, "served" if all(c is True for c in clean) else "reset")
            for open_stream in (upstream, writer):
                open_stream.close()
                with contextlib.suppress(OSError):
                    await open_stream.wait_closed()
        finally:
            entry.active[backend] -= 1
            # Also reached on cancellation (emulator shutdown): never leave a socket open behind us.
            for stream in (upstream_writer, writer):
                if stream is not None and not stream.is_closing():
                    stream.transport.abort()

    async def _shutdown(self) -> None:
        for entry in self._listening.values():
            entry.server.close()
        self._listening.clear()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)


async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> bool:
    """Copy until EOF; False when either side failed (the other one is then aborted too)."""
    try:
        while chunk := await source.read(_CHUNK):
            sink.write(chunk)
            await sink.drain()
        # Pass the half-close on so request/response protocols that shut down writing still work.
        if sink.can_write_eof() and not sink.is_closing():
            sink.write_eof()
        return True
    except OSError:
        sink.transport.abort()
        return False


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0) rather than FIN: the client sees a refused/reset connection."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
