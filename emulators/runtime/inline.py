"""The in-process invoker: the project's functions run in this process, one at a time, with SCF's retries.

A test and demo runtime, never a production one: `clb-direct invoke/replay`, the demo tools and the test
suite install it (through `shared.adapters.invokers.provide_in_process_invoker`) when the settings say
`invoker = "inline"`. It receives a handler map (function name -> `handler(event, context)`);
`EntryPointHandlers` is the map the local runtime uses too, importing `functions.<name>.handler` lazily by
its entry-point string, as SCF loads a function's configured handler. It imports nothing of the product:
it satisfies the `Invoker` port by shape, and the host passes the payload encoder the product uses.
"""

from __future__ import annotations

import importlib
import itertools
import json
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from emulators.runtime.runtime import DEFAULT_FUNCTIONS, FunctionSpec

Handler = Callable[[dict[str, Any], dict[str, Any]], Any]
Encoder = Callable[[str, Mapping[str, Any]], str]

log = structlog.get_logger("emulators.runtime.inline")

SCF_ASYNC_MAX_PAYLOAD_BYTES = 128 * 1024  # what SCF's Invoke accepts as an async event
SCF_ASYNC_RETRIES = 2  # SCF retries a failed async invocation twice by default, then dead-letters it


class PayloadTooLarge(ValueError):
    """The event is over SCF's async payload limit; SCF's Invoke would refuse it."""


def scf_encode(function: str, payload: Mapping[str, Any]) -> str:
    """The JSON an async invocation carries, refused over SCF's limit (used when the host passes none)."""
    text = json.dumps(payload, separators=(",", ":"), sort_keys=True, default=str)
    size = len(text.encode("utf-8"))
    if size > SCF_ASYNC_MAX_PAYLOAD_BYTES:
        raise PayloadTooLarge(f"async event for {function} is {size} bytes, over {SCF_ASYNC_MAX_PAYLOAD_BYTES}")
    return text


class EntryPointHandlers(Mapping[str, Handler]):
    """Handlers by function name, each imported from its entry point on first use (thread-safe)."""

    def __init__(self, functions: Sequence[FunctionSpec] = DEFAULT_FUNCTIONS) -> None:
        self._specs = {spec.name: spec for spec in functions}
        self._loaded: dict[str, Handler] = {}
        self._lock = threading.Lock()

    def __getitem__(self, function: str) -> Handler:
        spec = self._specs[function]
        with self._lock:
            if function not in self._loaded:
                module_name, attribute = spec.entry_point
                self._loaded[function] = getattr(importlib.import_module(module_name), attribute)
            return self._loaded[function]

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)


@dataclass
class Invocation:
    function: str
    payload: dict[str, Any]
    request_id: str
    attempt: int = 0
    error: str | None = None


class InlineInvoker:
    """Runs handlers in this process, one at a time, in FIFO order.

    An invoke made while a handler runs is queued and runs after it, so recursion depth stays flat no
    matter how long the chain of steps is. A handler that raises is retried (at the back of the queue)
    up to `max_retries` times, like SCF's async retry; then the invocation goes to `dead_letters`.
    """

    def __init__(
        self,
        handlers: Mapping[str, Handler],
        *,
        encode: Encoder = scf_encode,
        max_retries: int = SCF_ASYNC_RETRIES,
    ) -> None:
        self._handlers = handlers
        self._encode = encode
        self._max_retries = max_retries
        self._queue: deque[Invocation] = deque()
        self._lock = threading.Lock()
        self._running = False
        self._ids = itertools.count(1)
        self.completed: list[Invocation] = []
        self.failures: list[Invocation] = []
        self.dead_letters: list[Invocation] = []

    def invoke_async(self, function: str, payload: Mapping[str, Any]) -> str:
        self._handler(function)
        # A JSON round trip gives the callee its own copy, exactly as SCF delivers the event.
        event = json.loads(self._encode(function, payload))
        request_id = f"inline-{next(self._ids)}-{uuid.uuid4().hex[:8]}"
        with self._lock:
            self._queue.append(Invocation(function, event, request_id))
            if self._running:
                return request_id
            self._running = True
        self._drain()
        return request_id

    def _handler(self, function: str) -> Handler:
        try:
            return self._handlers[function]
        except KeyError:
            raise KeyError(f"no function {function!r} in this runtime; known: {sorted(self._handlers)}") from None

    def _drain(self) -> None:
        try:
            self._run_queue()
        finally:
            with self._lock:
                self._running = False

    def _run_queue(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    return
                item = self._queue.popleft()
            context = {"request_id": item.request_id, "function_name": item.function, "invocation_type": "Event"}
            try:
                self._handler(item.function)(item.payload, context)
            except Exception as exc:  # any failure of the callee is its own; record and retry like SCF
                item.error = f"{type(exc).__name__}: {exc}"
                self.failures.append(Invocation(item.function, item.payload, item.request_id, item.attempt, item.error))
                if item.attempt < self._max_retries:
                    item.attempt += 1
                    with self._lock:
                        self._queue.append(item)
                else:
                    log.warning("function.dead_lettered", target=item.function, error=item.error)
                    self.dead_letters.append(item)
                continue
            self.completed.append(item)
