"""The local runtime's asynchronous invocation queue, with SCF's async semantics.

SCF runs an async (`InvocationType=Event`) invocation at least once; when the function raises (run error,
including a timeout) it is retried twice by default, then the event goes to the dead-letter queue
(SCF's documented async-invoke behaviour). This queue does the same locally: worker threads pull due items, a failure
is re-queued after `retry_delay_s`, and after `max_retries` retries the event is kept in a dead-letter log
(in memory and, if configured, appended to a JSONL file).

On SCF every function scales on its own: one function's backlog never delays another's events. So each
function gets its own lane here (a heap and `workers` threads, started on its first event): a flip or an
unbind never waits behind long bind batches. `workers` is a function's concurrency, far below what SCF
grants one function by default (the account quota), so the local runtime is never kinder than SCF.
"""

from __future__ import annotations

import heapq
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

InvokeFn = Callable[[str, dict[str, Any], str], Any]


@dataclass(order=True)
class _Item:
    due: float
    seq: int
    function: str = field(compare=False)
    payload: dict[str, Any] = field(compare=False)
    request_id: str = field(compare=False)
    attempt: int = field(compare=False, default=0)


@dataclass
class QueueStats:
    submitted: int = 0
    succeeded: int = 0
    failed_attempts: int = 0
    dead_lettered: int = 0
    in_flight: int = 0


class _Lane:
    """One function's queued events and its workers (its concurrency)."""

    def __init__(self, lock: threading.Lock) -> None:
        self.heap: list[_Item] = []
        self.ready = threading.Condition(lock)
        self.threads: list[threading.Thread] = []
        self.in_flight = 0


class AsyncInvokeQueue:
    """At-least-once async invocations with retries and a dead-letter log, one lane per function."""

    def __init__(
        self,
        invoke: InvokeFn,
        *,
        workers: int = 4,
        max_retries: int = 2,
        retry_delay_s: float = 1.0,
        dead_letter_path: Path | None = None,
    ) -> None:
        self._invoke = invoke
        self._workers = workers
        self.max_retries = max_retries
        self.retry_delay_s = retry_delay_s
        self._dead_letter_path = dead_letter_path
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._lanes: dict[str, _Lane] = {}
        self._seq = itertools.count()
        self._running = False
        self._stopping = False
        self.stats = QueueStats()
        self.dead_letters: list[dict[str, Any]] = []

    def start(self) -> None:
        with self._lock:
            self._stopping = False
            self._running = True
            for name, lane in self._lanes.items():
                self._spawn(name, lane)

    def stop(self, timeout_s: float = 5.0) -> None:
        with self._lock:
            self._stopping = True
            self._running = False
            lanes = list(self._lanes.values())
            for lane in lanes:
                lane.ready.notify_all()
        for lane in lanes:
            for thread in lane.threads:
                thread.join(timeout_s)
            lane.threads.clear()

    def _spawn(self, function: str, lane: _Lane) -> None:
        """Start the lane's workers (lock held)."""
        while len(lane.threads) < self._workers:
            index = len(lane.threads)
            thread = threading.Thread(
                target=self._work, args=(lane,), name=f"scf-async-{function}-{index}", daemon=True
            )
            lane.threads.append(thread)
            thread.start()

    def _lane(self, function: str) -> _Lane:
        """The function's lane, created (and started, when the queue runs) on its first event (lock held)."""
        lane = self._lanes.get(function)
        if lane is None:
            lane = self._lanes[function] = _Lane(self._lock)
            if self._running:
                self._spawn(function, lane)
        return lane

    def _push(self, item: _Item) -> None:
        """Queue `item` on its function's lane (lock held)."""
        lane = self._lane(item.function)
        heapq.heappush(lane.heap, item)
        lane.ready.notify()

    def submit(self, function: str, payload: dict[str, Any], *, delay_s: float = 0.0) -> str:
        request_id = str(uuid.uuid4())
        with self._lock:
            self._push(_Item(time.monotonic() + delay_s, next(self._seq), function, payload, request_id))
            self.stats.submitted += 1
        return request_id

    def wait_idle(self, timeout_s: float) -> bool:
        """True once nothing is queued or running (delayed retries count as queued)."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._pending():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(min(remaining, 0.1))
        return True

    def pending(self) -> int:
        with self._lock:
            return self._pending()

    def lanes(self) -> dict[str, dict[str, int]]:
        """Per function: events queued (due or delayed) and running."""
        with self._lock:
            return {name: {"queued": len(lane.heap), "running": lane.in_flight} for name, lane in self._lanes.items()}

    def _pending(self) -> int:
        return sum(len(lane.heap) for lane in self._lanes.values()) + self.stats.in_flight

    def _next_item(self, lane: _Lane) -> _Item | None:
        with self._lock:
            while not self._stopping:
                if lane.heap and lane.heap[0].due <= time.monotonic():
                    self.stats.in_flight += 1
                    lane.in_flight += 1
                    return heapq.heappop(lane.heap)
                wait = (lane.heap[0].due - time.monotonic()) if lane.heap else 0.5
                lane.ready.wait(max(0.01, min(wait, 0.5)))
            return None

    def _work(self, lane: _Lane) -> None:
        while True:
            item = self._next_item(lane)
            if item is None:
                return
            try:
                self._invoke(item.function, item.payload, item.request_id)
            except Exception as exc:  # any run error is retried, as SCF does
                self._on_failure(item, exc)
            else:
                with self._lock:
                    self.stats.succeeded += 1
            finally:
                with self._lock:
                    self.stats.in_flight -= 1
                    lane.in_flight -= 1
                    self._idle.notify_all()

    def _on_failure(self, item: _Item, exc: Exception) -> None:
        with self._lock:
            self.stats.failed_attempts += 1
            if item.attempt < self.max_retries:
                delay = getattr(exc, "delay_s", None)
                due = time.monotonic() + max(float(delay) if delay else 0.0, self.retry_delay_s)
                self._push(_Item(due, next(self._seq), item.function, item.payload, item.request_id, item.attempt + 1))
                return
            self.stats.dead_lettered += 1
            letter = {
                "function": item.function,
                "request_id": item.request_id,
                "attempts": item.attempt + 1,
                "error": f"{type(exc).__name__}: {exc}",
                "payload": item.payload,
            }
        # Durable before visible: whoever sees the letter in memory may read the file at once.
        if self._dead_letter_path is not None:
            with self._dead_letter_path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(letter, default=str) + "\n")
        with self._lock:
            self.dead_letters.append(letter)
