"""Bounded buffer -> size/time batches -> HMAC-signed POSTs to the router, with retries and backoff.

The audit endpoint and the watch loops call `Batcher.offer()`, which never blocks: when the buffer
is full the oldest item is dropped and counted (the API server must never wait on us; reconcile
repairs what is lost). One sender thread cuts a batch when `batch_size` items are waiting or the
oldest has waited `window_s`, signs it (`shared.signing`) and POSTs it; connection errors, 429 and
5xx are retried with jittered exponential backoff, other 4xx (a rejected signature, a malformed batch)
are not — retrying cannot fix them.
"""

from __future__ import annotations

import random
import ssl
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

from shared.events.relay import AuditItem, RelayBatch, WatchItem
from shared.signing import sign_batch

Item = AuditItem | WatchItem
# (url, body, headers, timeout_s) -> HTTP status; raises OSError on transport failure.
PostFunction = Callable[[str, bytes, dict[str, str], float], int]


@dataclass(frozen=True)
class BatcherConfig:
    router_url: str
    hmac_key: bytes
    relay_name: str = "relay"
    batch_size: int = 200
    window_s: float = 1.0
    buffer_size: int = 10_000
    max_attempts: int = 6
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    timeout_s: float = 10.0
    ca_file: str | None = None


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
        self._buffer: deque[tuple[float, Item]] = deque()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.counters: Counter[str] = Counter()

    # --- producers -----------------------------------------------------------------------------------
    def offer(self, item: Item) -> None:
        with self._cond:
            if len(self._buffer) >= self.config.buffer_size:
                self._buffer.popleft()
                self.counters["dropped_overflow"] += 1
            self._buffer.append((time.monotonic(), item))
            self.counters["buffered"] += 1
            if len(self._buffer) >= self.config.batch_size:
                self._cond.notify()

    def pending(self) -> int:
        with self._cond:
            return len(self._buffer)

    # --- sender --------------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="relay-batcher", daemon=True)
        self._thread.start()

    def stop(self, *, flush: bool = True) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if flush:
            while batch := self._take(force=True):
                self.send(batch)

    def _take(self, *, force: bool = False) -> list[Item]:
        with self._cond:
            if not self._buffer:
                return []
            age = time.monotonic() - self._buffer[0][0]
            if not force and len(self._buffer) < self.config.batch_size and age < self.config.window_s:
                return []
            count = min(self.config.batch_size, len(self._buffer))
            return [self._buffer.popleft()[1] for _ in range(count)]

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self._take()
            if batch:
                self.send(batch)
                continue
            with self._cond:
                wait = self.config.window_s
                if self._buffer:
                    wait = max(0.0, self.config.window_s - (time.monotonic() - self._buffer[0][0]))
                self._cond.wait(timeout=max(wait, 0.01))

    def send(self, items: list[Item]) -> bool:
        """POST one batch; True once the router accepted it."""
        batch = RelayBatch(
            batch_id=uuid.uuid4().hex,
            relay=self.config.relay_name,
            created_at=time.time(),
            dropped_total=self.counters["dropped_overflow"] + self.counters["dropped_events"],
            items=items,
        )
        body = batch.to_body()
        for attempt in range(1, self.config.max_attempts + 1):
            # Re-signed per attempt: a long backoff must not push the timestamp past the router's skew limit.
            signed = sign_batch(self.config.hmac_key, body, batch_id=batch.batch_id, now=time.time())
            headers = {"Content-Type": "application/json", **signed.as_dict()}
            try:
                status = self._post(self.config.router_url, body, headers, self.config.timeout_s)
            except OSError:
                status = 0
            if 200 <= status < 300:
                self.counters["batches_sent"] += 1
                self.counters["events_sent"] += len(items)
                return True
            if 400 <= status < 500 and status != 429:
                self.counters["batches_rejected"] += 1
                self.counters["events_rejected"] += len(items)
                return False
            self.counters["retries"] += 1
            if attempt < self.config.max_attempts:
                delay = min(self.config.backoff_cap_s, self.config.backoff_base_s * 2 ** (attempt - 1))
                if self._stop.wait(delay * random.uniform(0.8, 1.2)):
                    break
        self.counters["batches_dropped"] += 1
        self.counters["dropped_events"] += len(items)
        return False
