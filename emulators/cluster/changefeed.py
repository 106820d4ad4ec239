"""The object store's change feed: bounded history, watch streams and in-order subscriber callbacks.

Owned by ``store.py``: the store calls :meth:`ChangeFeed.publish` and :meth:`ChangeFeed.open_watch`
while holding its lock (shared with the feed), so a watch's initial snapshot or history replay and its
live events form one gap-free sequence. Subscriber callbacks run after the lock is released, one
dispatcher at a time and in resourceVersion order; a callback that writes to the store has its own
change delivered after the current one instead of re-entering (no deadlock, no reordering).
"""

from __future__ import annotations

import copy
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from emulators.cluster.errors import expired
from emulators.cluster.watch import ChangeEvent, WatchStream

log = logging.getLogger(__name__)
Subscriber = Callable[[str, str, dict[str, Any]], None]


class ChangeFeed:
    def __init__(self, lock: threading.RLock, history_size: int) -> None:
        self._lock = lock
        self._history: deque[ChangeEvent] = deque(maxlen=history_size)
        self._compacted_rv = 0  # the newest resourceVersion no longer in the history window
        self._watchers: set[WatchStream] = set()
        self._subscribers: list[Subscriber] = []
        self._pending: deque[ChangeEvent] = deque()
        self._dispatch_lock = threading.Lock()
        self._dispatching = threading.local()

    def publish(self, change: ChangeEvent) -> None:
        """Record a committed change; the caller holds the store lock."""
        if len(self._history) == self._history.maxlen:
            self._compacted_rv = self._history[0].resource_version
        self._history.append(change)
        for stream in list(self._watchers):
            stream.offer(change)
        self._pending.append(change)

    def open_watch(self, stream: WatchStream, start: int | None, current: Iterable[dict[str, Any]]) -> None:
        """Prime ``stream`` and register it; the caller holds the store lock.

        ``start`` None means "from now, with synthetic ADDED for ``current``"; an expired ``start`` puts a
        410 ERROR in the stream and closes it, as the watch cache does.
        """
        if start is None:
            for obj in current:
                if stream.matches(obj):
                    stream.push("ADDED", obj)
        elif start < self._compacted_rv:
            stream.push("ERROR", expired(start, self._compacted_rv + 1).status)
            stream.close()
            return
        else:
            for change in self._history:
                if change.resource_version > start:
                    stream.offer(change)
        self._watchers.add(stream)

    def forget(self, stream: WatchStream) -> None:
        with self._lock:
            self._watchers.discard(stream)

    def close_all(self) -> None:
        with self._lock:
            watchers = list(self._watchers)
        for stream in watchers:
            stream.close()

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def dispatch(self) -> None:
        """Deliver pending changes to subscribers outside the store lock."""
        if getattr(self._dispatching, "active", False):
            return  # a subscriber wrote to the store; the outer loop delivers that change in order
        with self._dispatch_lock:
            self._dispatching.active = True
            try:
                while True:
                    with self._lock:
                        if not self._pending:
                            return
                        change = self._pending.popleft()
                        subscribers = list(self._subscribers)
                    for callback in subscribers:
                        try:
                            callback(change.event_type, change.resource, copy.deepcopy(change.obj))
                        except Exception:
                            log.exception("store subscriber %r failed on %s", callback, change.event_type)
            finally:
                self._dispatching.active = False
