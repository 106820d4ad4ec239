"""The relay's lossless, bounded buffer: per object, only the newest event waits to be sent.

Events are hints and every step re-reads the state it acts on, so when several events for one object
(kind, namespace, name, UID) wait, only the newest (by resourceVersion when both are integers, else by
arrival) needs to reach the router. Memory is therefore bounded by the number of distinct objects, not
by the event rate, and nothing is ever dropped to make room. Used by `relay.batcher.Batcher`:

- `put(key, rv, is_delete, body)` stores or supersedes (a stale arrival is absorbed by the newer
  pending entry) and returns a `Ticket` that completes once an entry covering it is delivered;
- `take(n)` hands the oldest n entries to the sender (in flight); `ack()` completes their tickets;
  `requeue()` puts a failed batch back, merging with anything newer that arrived meanwhile;
- `objects()` counts the distinct objects not yet delivered, waiting or in flight (what `/stats`
  reports as pending: it does not dip by a batch while the sender is retrying one).

Entries keep the position of their first arrival, so an object updated continuously is not starved.
Once a backlog builds up (more than `compress_above` objects waiting, e.g. while the router is down)
new bodies are held zlib-compressed (level 1: JSON shrinks 3-5x), so a 50,000-object backlog costs
tens of MB, not hundreds; in steady flow nothing waits long enough to be worth the CPU. The first
body compressed becomes the preset dictionary of all later ones: events of one kind share most of
their bytes, so each then costs a few hundred bytes.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field


class Ticket:
    """Completes when every event it was issued for has been delivered (or superseded and delivered)."""

    def __init__(self, count: int = 0) -> None:
        self._remaining = count
        self._lock = threading.Lock()
        self._done = threading.Event()
        if count == 0:
            self._done.set()

    def add(self, n: int = 1) -> None:
        with self._lock:
            self._remaining += n
            self._done.clear()

    def complete(self, n: int = 1) -> None:
        with self._lock:
            self._remaining -= n
            if self._remaining <= 0:
                self._done.set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout_s: float | None) -> bool:
        return self._done.wait(timeout_s)


@dataclass(slots=True)
class Entry:
    key: str
    rv: str
    is_delete: bool
    packed: bytes  # the item JSON, zlib-compressed when it starts with the zlib header byte
    first_seen: float
    tickets: list[Ticket] = field(default_factory=list)


def newer_or_equal(rv: str, is_delete: bool, than_rv: str, than_delete: bool) -> bool:
    """Does (rv, is_delete) supersede (than_rv, than_delete)? Integers compare; otherwise the arrival wins.

    At one resourceVersion the delete is the terminal event, so it wins over the update it follows.
    """
    if not (rv.isdigit() and than_rv.isdigit()):
        return True
    new, old = int(rv), int(than_rv)
    return new > old or (new == old and (is_delete or not than_delete))


class PendingBuffer:
    def __init__(self, *, compress_above: int = 1_000) -> None:
        self._compress_above = compress_above
        self._zdict: bytes | None = None
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._bytes = 0
        self.superseded = 0
        self._flying: set[str] = set()  # keys of entries taken and neither acked nor requeued yet
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def objects(self) -> int:
        """Distinct objects not yet delivered: waiting in the buffer or in a batch in flight."""
        with self._lock:
            return len(self._entries) + sum(1 for key in self._flying if key not in self._entries)

    def pending_bytes(self) -> int:
        with self._lock:
            return self._bytes

    def oldest_age(self, now: float | None = None) -> float | None:
        with self._lock:
            if not self._entries:
                return None
            first = next(iter(self._entries.values()))
            return (now if now is not None else time.monotonic()) - first.first_seen

    def _pack(self, body: bytes) -> bytes:
        if self._zdict is None:
            self._zdict = body[-32768:]
        packer = zlib.compressobj(1, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY, self._zdict)
        return packer.compress(body) + packer.flush()

    def body(self, entry: Entry) -> bytes:
        """The item JSON of an entry (JSON starts with "{"; a zlib stream with 0x78)."""
        if entry.packed[:1] != b"\x78":
            return entry.packed
        assert self._zdict is not None
        unpacker = zlib.decompressobj(15, self._zdict)
        return unpacker.decompress(entry.packed) + unpacker.flush()

    def put(self, key: str, rv: str, is_delete: bool, body: bytes, ticket: Ticket | None = None) -> None:
        """Store one event for `key`; `ticket` (if any) completes when an entry covering it is delivered."""
        if ticket is not None:
            ticket.add()
        packed = self._pack(body) if len(self._entries) > self._compress_above else body
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = Entry(key, rv, is_delete, packed, time.monotonic())
                self._entries[key] = entry
                self._bytes += len(packed)
            else:
                self.superseded += 1
                if newer_or_equal(rv, is_delete, entry.rv, entry.is_delete):
                    self._bytes += len(packed) - len(entry.packed)
                    entry.rv, entry.is_delete, entry.packed = rv, is_delete, packed
            if ticket is not None:
                entry.tickets.append(ticket)

    def take(self, count: int) -> list[Entry]:
        with self._lock:
            taken: list[Entry] = []
            while self._entries and len(taken) < count:
                _, entry = self._entries.popitem(last=False)
                self._bytes -= len(entry.packed)
                taken.append(entry)
                self._flying.add(entry.key)
            return taken

    def ack(self, entries: list[Entry]) -> None:
        """These taken entries were delivered (or given up): complete their tickets, they are no longer in flight."""
        with self._lock:
            self._flying.difference_update(entry.key for entry in entries)
        for entry in entries:
            for ticket in entry.tickets:
                ticket.complete()
            entry.tickets.clear()

    def requeue(self, entries: list[Entry]) -> None:
        """Put a failed batch back at the front; an entry that arrived meanwhile for a key keeps the newer body."""
        with self._lock:
            self._flying.difference_update(entry.key for entry in entries)
            for entry in reversed(entries):
                current = self._entries.get(entry.key)
                if current is None:
                    self._entries[entry.key] = entry
                    self._entries.move_to_end(entry.key, last=False)
                    self._bytes += len(entry.packed)
                    continue
                if not newer_or_equal(current.rv, current.is_delete, entry.rv, entry.is_delete):
                    self._bytes += len(entry.packed) - len(current.packed)
                    current.rv, current.is_delete, current.packed = entry.rv, entry.is_delete, entry.packed
                current.tickets.extend(entry.tickets)
                current.first_seen = min(current.first_seen, entry.first_seen)
                self._entries.move_to_end(entry.key, last=False)
