"""An asyncio event loop running on its own daemon thread, driven from synchronous code.

The health checker and the forwarding proxy each own one, so thousands of sockets are multiplexed on a
single thread per component and a burst of proxied traffic cannot delay health probes (or the reverse).
The rest of the emulator is threaded and synchronous; this is the bridge: `call` runs a coroutine on the
loop and waits for its result, `call_soon` schedules a plain callback from any thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    def __init__(self, name: str) -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"{self._name} loop already started")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def call(self, factory: Callable[[], Coroutine[Any, Any, T]], timeout: float = 30.0) -> T:
        """Run `factory()` on the loop and wait for its result."""
        if self._loop is None:
            raise RuntimeError(f"{self._name} loop is not running; call start() first")
        return asyncio.run_coroutine_threadsafe(factory(), self._loop).result(timeout)

    def call_soon(self, callback: Callable[[], object]) -> None:
        """Schedule `callback` on the loop from any thread; a no-op once the loop is closed."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(callback)
        except RuntimeError:
            # The loop closed between the check and the call (shutdown race); nothing left to notify.
            return

    def stop(self, shutdown: Callable[[], Coroutine[Any, Any, None]] | None = None) -> None:
        """Run `shutdown()` on the loop (to close sockets and cancel tasks), then stop and close it."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if shutdown is not None:
            self.call(shutdown)
        self.call(_cancel_remaining_tasks)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        self._loop = None
        self._thread = None


async def _cancel_remaining_tasks() -> None:
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
