"""The local runtime's asynchronous invocation queue, with SCF's async semantics.

SCF runs an async (`InvocationType=Event`) invocation at least once; when the function raises (run error,
including a timeout) it is retried twice by default, then the event goes to the dead-letter queue
(SCF's documented async-invoke behaviour). This queue does the same locally: worker threads pull due items, a failure
is re-queued after `retry_delay_s`, and after `max_retries` retries the event is kept in a dead-letter log
(in memory and, if configured, appended to a JSONL file).
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


class AsyncInvokeQueue:
    """At-least-once async invocations with retries and a dead-letter log."""

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
        self._heap: list[_Item] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self.stats = QueueStats()
        self.dead_letters: list[dict[str, Any]] = []

    def start(self) -> None:
        self._stopping = False
        for index in range(self._workers):
            thread = threading.Thread(target=self._work, name=f"scf-async-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout_s: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout_s)
        self._threads.clear()

    def submit(self, function: str, payload: dict[str, Any], *, delay_s: float = 0.0) -> str:
        request_id = str(uuid.uuid4())
        item = _Item(time.monotonic() + delay_s, next(self._seq), function, payload, request_id)
        with self._cond:
            heapq.heappush(self._heap, item)
            self.stats.submitted += 1
            self._cond.notify()
        return request_id

    def wait_idle(self, timeout_s: float) -> bool:
        """True once nothing is queued or running (delayed retries count as queued)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._heap or self.stats.in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.1))
        return True

    def pending(self) -> int:
        with self._cond:
            return len(self._heap) + self.stats.in_flight

    def _next_item(self) -> _Item | None:
        with self._cond:
            while not self._stopping:
                if self._heap and self._heap[0].due <= time.monotonic():
                    self.stats.in_flight += 1
                    return heapq.heappop(self._heap)
                wait = (self._heap[0].due - time.monotonic()) if self._heap else 0.5
                self._cond.wait(max(0.01, min(wait, 0.5)))
            return None

    def _work(self) -> None:
        while True:
            item = self._next_item()
            if item is None:
                return
            try:
                self._invoke(item.function, item.payload, item.request_id)
            except Exception as exc:  # any run error is retried, as SCF does
                self._on_failure(item, exc)
            else:
                with self._cond:
                    self.stats.succeeded += 1
            finally:
                with self._cond:
                    self.stats.in_flight -= 1
                    self._cond.notify_all()

    def _on_failure(self, item: _Item, exc: Exception) -> None:
        with self._cond:
            self.stats.failed_attempts += 1
            if item.attempt < self.max_retries:
                delay = getattr(exc, "delay_s", None)
                due = time.monotonic() + max(float(delay) if delay else 0.0, self.retry_delay_s)
                retry = _Item(due, next(self._seq), item.function, item.payload, item.request_id, item.attempt + 1)
                heapq.heappush(self._heap, retry)
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
        with self._cond:
            self.dead_letters.append(letter)
