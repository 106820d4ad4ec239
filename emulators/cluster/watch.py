"""Watch streams: per-watcher event queues fed by the object store, with selector transitions.

The object store creates a :class:`WatchStream` under its lock (so the initial ADDED snapshot or the
history replay and the live events form one gap-free sequence) and offers it every change. The HTTP
server drains it into a chunked one-JSON-per-line response, adding BOOKMARKs and ending the stream at
``timeoutSeconds`` or server stop. As upstream's watch cache does, an object that starts matching the
selectors is sent as ADDED and one that stops matching as DELETED.
"""

from __future__ import annotations

import copy
import queue
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from emulators.cluster.selectors import FieldPredicate, Requirement, labels_match


@dataclass(frozen=True)
class ChangeEvent:
    """One committed change, as kept in the store's history window."""

    resource_version: int
    event_type: str  # ADDED, MODIFIED, DELETED
    resource: str
    obj: dict[str, Any]
    old: dict[str, Any] | None


_CLOSED = object()


class WatchStream:
    """A single watcher: filters changes and buffers them until the consumer reads them."""

    def __init__(
        self,
        resource: str,
        namespace: str | None,
        label_requirements: list[Requirement],
        field_predicate: FieldPredicate,
        on_close: Callable[[WatchStream], None],
    ) -> None:
        self.resource = resource
        self.namespace = namespace
        self._labels = label_requirements
        self._fields = field_predicate
        self._on_close = on_close
        self._queue: queue.Queue[Any] = queue.Queue()
        self.closed = False

    def matches(self, obj: Mapping[str, Any] | None) -> bool:
        if obj is None:
            return False
        meta = obj.get("metadata") or {}
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        return labels_match(self._labels, meta.get("labels")) and self._fields(obj)

    def push(self, event_type: str, obj: dict[str, Any]) -> None:
        """Queue an event as is (synthetic ADDED, ERROR); the caller already filtered it."""
        self._queue.put({"type": event_type, "object": copy.deepcopy(obj)})

    def offer(self, change: ChangeEvent) -> None:
        """Queue ``change`` if this watcher sees it, translating selector transitions."""
        if change.resource != self.resource or self.closed:
            return
        now_matches = change.event_type != "DELETED" and self.matches(change.obj)
        was_matching = change.event_type != "ADDED" and self.matches(change.old)
        if change.event_type == "DELETED":
            if self.matches(change.obj) or was_matching:
                self.push("DELETED", change.obj)
        elif now_matches and was_matching:
            self.push("MODIFIED", change.obj)
        elif now_matches:
            self.push("ADDED", change.obj)
        elif was_matching:
            self.push("DELETED", change.obj)

    def next_event(self, timeout: float) -> dict[str, Any] | None:
        """The next event, or ``None`` after ``timeout`` seconds or once the stream is closed."""
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is _CLOSED:
            self._queue.put(_CLOSED)  # keep later readers from blocking too
            return None
        return dict(item)

    def idle(self) -> bool:
        """True when every queued event has been read (a BOOKMARK then cannot overtake one)."""
        return self._queue.empty()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._queue.put(_CLOSED)
            self._on_close(self)
