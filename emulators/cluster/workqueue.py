"""A keyed work queue with one worker thread, delayed adds and periodic resync, like client-go's.

The scheduler, kubelet and controllers in `emulators/cluster/` each own one `WorkQueue`: store
watch callbacks only `add` keys (they run inside the store's notification path, so they must never
call back into the store), the worker thread runs `sync(key)` for each distinct pending key, a key
that fails is retried with capped exponential backoff, and `add_after` serves time-driven work
(start delays, grace periods, minReadySeconds, progress deadlines). Delays use the monotonic clock:
they schedule real work, while the *rules* read time from an injectable `SimClock`.
"""

from __future__ import annotations

import abc
import heapq
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emulators.cluster.store import ObjectStore

log = logging.getLogger(__name__)

_MAX_BACKOFF_S = 2.0


class WorkQueue:
    def __init__(
        self,
        name: str,
        sync: Callable[[str], None],
        *,
        resync: Callable[[], Iterable[str]] | None = None,
        resync_period_s: float = 5.0,
    ) -> None:
        self.name = name
        self._sync = sync
        self._resync = resync
        self._resync_period_s = resync_period_s
        self._cond = threading.Condition()
        self._pending: dict[str, None] = {}
        self._delayed: list[tuple[float, int, str]] = []
        self._sequence = 0
        self._failures: dict[str, int] = {}
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._next_resync = 0.0

    def start(self) -> None:
        if self._thread is not None:
            return
        self._next_resync = time.monotonic() + self._resync_period_s
        self._thread = threading.Thread(target=self._run, name=f"sim-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def add(self, key: str) -> None:
        with self._cond:
            self._pending[key] = None
            self._cond.notify_all()

    def add_after(self, key: str, delay_s: float) -> None:
        if delay_s <= 0:
            self.add(key)
            return
        with self._cond:
            self._sequence += 1
            heapq.heappush(self._delayed, (time.monotonic() + delay_s, self._sequence, key))
            self._cond.notify_all()

    def _next_key(self) -> str | None:
        """Block until a key is due; "" means "time to resync", None means "stopping"."""
        with self._cond:
            while not self._stopping:
                now = time.monotonic()
                while self._delayed and self._delayed[0][0] <= now:
                    _, _, key = heapq.heappop(self._delayed)
                    self._pending[key] = None
                if self._resync is not None and now >= self._next_resync:
                    self._next_resync = now + self._resync_period_s
                    return ""
                if self._pending:
                    key = next(iter(self._pending))
                    del self._pending[key]
                    return key
                wake = self._next_resync if self._resync is not None else now + 3600.0
                if self._delayed:
                    wake = min(wake, self._delayed[0][0])
                self._cond.wait(max(0.0, wake - now))
        return None

    def _run(self) -> None:
        while True:
            key = self._next_key()
            if key is None:
                return
            if key == "":
                self._enqueue_resync()
                continue
            try:
                self._sync(key)
            except Exception:
                failures = self._failures.get(key, 0) + 1
                self._failures[key] = failures
                log.exception("sim %s: sync of %s failed (attempt %d); retrying", self.name, key, failures)
                self.add_after(key, min(_MAX_BACKOFF_S, 0.05 * 2**failures))
            else:
                self._failures.pop(key, None)

    def _enqueue_resync(self) -> None:
        assert self._resync is not None
        try:
            keys = list(self._resync())
        except Exception:
            log.exception("sim %s: resync listing failed", self.name)
            return
        with self._cond:
            for key in keys:
                self._pending[key] = None
            self._cond.notify_all()


class StoreController(abc.ABC):
    """Base of the scheduler, kubelet and controllers: store change feed → keyed `WorkQueue` → `_sync(key)`.

    Subclasses implement `_on_event` (runs in the store's notification path: only enqueue keys),
    `_all_keys` (the keys to sync at start and on every resync) and `_sync`.
    """

    def __init__(self, store: ObjectStore, name: str, *, resync_period_s: float) -> None:
        self._store = store
        self._queue = WorkQueue(name, self._sync, resync=self._all_keys, resync_period_s=resync_period_s)
        self._unsubscribe: Callable[[], None] | None = None

    def start(self) -> None:
        self._unsubscribe = self._store.subscribe(self._on_event)
        self._queue.start()
        for key in self._all_keys():
            self._queue.add(key)

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._queue.stop()

    @abc.abstractmethod
    def _on_event(self, kind: str, resource: str, obj: dict[str, Any]) -> None:
        """Implemented by each controller."""

    @abc.abstractmethod
    def _all_keys(self) -> list[str]:
        """Implemented by each controller."""

    @abc.abstractmethod
    def _sync(self, key: str) -> None:
        """Implemented by each controller."""
