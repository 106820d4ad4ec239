"""Each function has its own lane in the local runtime's async queue, as each SCF function scales apart:
a flip or an unbind never waits behind a function whose workers are all busy (long bind batches)."""

from __future__ import annotations

import threading
from typing import Any

from emulators.runtime.invoke_queue import AsyncInvokeQueue
from tests.support.polling import eventually


def test_a_function_with_every_worker_busy_does_not_hold_up_another_function() -> None:
    release = threading.Event()
    ran: list[str] = []

    def invoke(function: str, payload: dict[str, Any], _request_id: str) -> None:
        if function == "bind":
            release.wait(30)
        ran.append(f"{function}:{payload['n']}")

    queue = AsyncInvokeQueue(invoke, workers=2)
    queue.start()
    try:
        for n in range(4):
            queue.submit("bind", {"n": n})
        eventually(lambda: queue.lanes()["bind"] == {"queued": 2, "running": 2}, "both bind workers busy")
        queue.submit("flip", {"n": 0})
        queue.submit("unbind", {"n": 0})
        eventually(lambda: {"flip:0", "unbind:0"} <= set(ran), "flip and unbind ran while bind was busy")
        assert not any(r.startswith("bind") for r in ran)
        assert queue.pending() == 4
    finally:
        release.set()
        assert queue.wait_idle(30)
        queue.stop()
    assert sorted(ran) == ["bind:0", "bind:1", "bind:2", "bind:3", "flip:0", "unbind:0"]
    assert queue.stats.succeeded == 6 and queue.stats.in_flight == 0


def test_a_function_s_concurrency_is_its_worker_count() -> None:
    lock = threading.Lock()
    running, peak = [0], [0]
    gate = threading.Event()

    def invoke(_function: str, _payload: dict[str, Any], _request_id: str) -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        gate.wait(30)
        with lock:
            running[0] -= 1

    queue = AsyncInvokeQueue(invoke, workers=3)
    queue.start()
    try:
        for n in range(6):
            queue.submit("bind", {"n": n})
        eventually(lambda: queue.lanes()["bind"]["running"] == 3, "three binds running")
        gate.set()
        assert queue.wait_idle(30)
    finally:
        gate.set()
        queue.stop()
    assert peak[0] == 3
