"""Per-object pending events -> size/time batches -> HMAC-signed POSTs to the router, until delivered.

The audit endpoint and the watch loops call `Batcher.offer()`, which never blocks and never drops:
events wait in a `PendingBuffer` keyed per object, where a newer event for the same object supersedes
the older one (events are hints; the steps re-read state), so memory grows with distinct objects, not
with the event rate. One sender thread cuts a batch when `batch_size` objects wait or the oldest has
waited `window_s`, signs it (`shared.signing`) and POSTs it:

- 2xx: delivered; the tickets of its events complete (the audit endpoint answers 200 on that);
- connection errors, 401/403 (a key mid-rotation), 429 and 5xx: the batch goes back to the front of
  the buffer and is retried with jittered exponential backoff, without end and without loss;
- another 4xx (the router refuses the batch itself): the batch is split in halves and each is sent
  alone, so only the one item the router refuses is given up (counted, logged with its object key).
"""

from __future__ import annotations

import json
import random
import ssl
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from relay.pending import Entry, PendingBuffer, Ticket
from shared.logging import get_logger
from shared.metrics import emit_metric
from shared.signing import sign_batch

# (url, body, headers, timeout_s) -> HTTP status; raises OSError on transport failure.
PostFunction = Callable[[str, bytes, dict[str, str], float], int]
RETRIED_4XX = frozenset({401, 403, 408, 429})

log = get_logger("clb_direct.relay")


@dataclass(frozen=True)
class BatcherConfig:
    router_url: str
    hmac_key: bytes
    relay_name: str = "relay"
    batch_size: int = 200
    window_s: float = 1.0
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    timeout_s: float = 10.0
    ca_file: str | None = None
    ack_timeout_s: float = 10.0  # how long the audit endpoint waits for delivery before a 503 (API server retries)
    flush_timeout_s: float = 10.0  # how long stop() keeps delivering what is pending


def urllib_post(ca_file: str | None = None) -> PostFunction:
    context = ssl.create_default_context(cafile=ca_file) if ca_file else None

    def post(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> int:
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout_s, context=context) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    return post


class Batcher:
    def __init__(self, config: BatcherConfig, *, post: PostFunction | None = None) -> None:
        self.config = config
        self._post = post or urllib_post(config.ca_file)
        self.buffer = PendingBuffer()
        self._wake = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.counters: Counter[str] = Counter()
        self._failures = 0

    # --- producers -----------------------------------------------------------------------------------
    def offer(self, key: str, rv: str, is_delete: bool, item: bytes, ticket: Ticket | None = None) -> None:
        """Queue one serialised relay item for the object `key`; never blocks, never drops."""
        self.buffer.put(key, rv, is_delete, item, ticket)
        self.counters["offered"] += 1
        if len(self.buffer) >= self.config.batch_size:
            with self._wake:
                self._wake.notify()

    def pending(self) -> int:
        """Distinct objects not yet delivered, including those of a batch in flight or being retried."""
        return self.buffer.objects()

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def stats(self) -> dict[str, int]:
        return {**self.counters, "superseded": self.buffer.superseded, "pending_bytes": self.buffer.pending_bytes()}

    # --- sender --------------------------------------------------------------------------------------
    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="relay-batcher", daemon=True)
        self._thread.start()

    def stop(self, *, flush: bool = True) -> None:
        self._stop.set()
        with self._wake:
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout=30)
        deadline = time.monotonic() + self.config.flush_timeout_s
        while flush and len(self.buffer) and time.monotonic() < deadline:
            if not self._send_next(force=True):
                break

    def _due(self) -> bool:
        age = self.buffer.oldest_age()
        return age is not None and (len(self.buffer) >= self.config.batch_size or age >= self.config.window_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._due():
                if not self._send_next():
                    self._backoff()
                continue
            age = self.buffer.oldest_age()
            wait = self.config.window_s if age is None else max(0.01, self.config.window_s - age)
            with self._wake:
                self._wake.wait(timeout=wait)

    def _backoff(self) -> None:
        exponent = min(self._failures - 1, 30)
        delay = min(self.config.backoff_cap_s, self.config.backoff_base_s * 2**exponent)
        self._stop.wait(delay * random.uniform(0.8, 1.2))

    def _send_next(self, *, force: bool = False) -> bool:
        """Send the oldest batch; False when it must be retried later (it is back in the buffer)."""
        entries = self.buffer.take(self.config.batch_size)
        if not entries:
            return True
        status = self._deliver(entries)
        emit_metric("relay_queue_depth", len(self.buffer) + len(entries), "Count")
        if not 200 <= status < 300:
            emit_metric("relay_forward_errors", 1, "Count", status=str(status))
        if 200 <= status < 300:
            self._failures = 0
            return True
        if 400 <= status < 500 and status not in RETRIED_4XX:
            self._failures = 0
            self._isolate(entries, status)
            return True
        self._failures += 1
        self.counters["retries"] += 1
        self.buffer.requeue(entries)
        return False

    def _isolate(self, entries: list[Entry], status: int) -> None:
        """The router refused this batch: halve it until the refused item is alone, give up only that one."""
        if len(entries) == 1:
            self.counters["events_rejected"] += 1
            log.warning("relay.item_refused", object=entries[0].key, status=status)
            self.buffer.ack(entries)  # nothing retrying could fix: do not hold the sender's answer
            return
        middle = len(entries) // 2
        for half in (entries[:middle], entries[middle:]):
            result = self._deliver(half)
            if 400 <= result < 500 and result not in RETRIED_4XX:
                self._isolate(half, result)
            elif not 200 <= result < 300:
                self.buffer.requeue(half)

    def _deliver(self, entries: list[Entry]) -> int:
        batch_id = uuid.uuid4().hex
        head = {
            "batchId": batch_id,
            "relay": self.config.relay_name,
            "createdAt": time.time(),
            "droppedTotal": self.counters["events_rejected"],
        }
        body = json.dumps(head, separators=(",", ":"))[:-1].encode()
        body += b',"items":[' + b",".join(self.buffer.body(entry) for entry in entries) + b"]}"
        signed = sign_batch(self.config.hmac_key, body, batch_id=batch_id, now=time.time())
        headers = {"Content-Type": "application/json", **signed.as_dict()}
        try:
            status = self._post(self.config.router_url, body, headers, self.config.timeout_s)
        except OSError:
            status = 0
        if 200 <= status < 300:
            self.counters["batches_sent"] += 1
            self.counters["events_sent"] += len(entries)
            self.buffer.ack(entries)
        else:
            self.counters["batches_failed"] += 1
        return status
