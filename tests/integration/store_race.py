"""The contender of the store race in test_store_concurrency.py, in a module a spawned process imports cheaply.

A `spawn` child imports the module its target lives in; keeping `race` and `process_worker` here (no pytest,
no fixtures) keeps that import to the store itself, which matters when 6 interpreters boot at once on a
loaded 2-core machine.
"""

from __future__ import annotations

import uuid
from typing import Any

from shared.adapters.store_factory import open_store
from shared.domain.errors import IdempotencyInProgress

WORKERS = 6
TAKES_PER_WORKER = 8
BURST = 10
NOW = 1_700_000_000.0
DEADLINE_S = 60.0  # the race itself, once every contender is up
STARTUP_DEADLINE_S = 240.0  # booting an interpreter and importing the store: minutes on a loaded machine


def race(store: Any, barrier: Any) -> tuple[str, bool, int]:
    """One contender: wait for everyone, then claim, lease and take tokens (time frozen: no refill)."""
    barrier.wait(timeout=DEADLINE_S)
    try:
        claim = (
            "won"
            if store.idem_claim(
                "bind#race", "h", now=NOW, in_progress_ttl_s=60, record_ttl_s=600, token=str(uuid.uuid4())
            )
            is None
            else "replay"
        )
    except IdempotencyInProgress:
        claim = "in-progress"
    lease = store.acquire_lease("clb:race", f"holder-{uuid.uuid4()}", ttl_s=30, now=NOW)
    granted = sum(
        store.take_tokens("race", rate_per_s=0.001, burst=BURST, n=1, now=NOW) == 0.0 for _ in range(TAKES_PER_WORKER)
    )
    return claim, lease is not None, granted


def process_worker(url: str, ready: Any, go: Any, barrier: Any, results: Any) -> None:
    """Open the store, report ready, wait for the start signal (every contender up), then race.

    Any failure, opening the store included, is reported on `ready` or `results`, so the parent names it
    instead of waiting out its deadline for a process that is gone.
    """
    store = None
    try:
        store = open_store(url)
        ready.put("ready")
        if not go.wait(STARTUP_DEADLINE_S):
            raise TimeoutError("no start signal: the other contenders never came up")
        results.put(race(store, barrier))
    except BaseException as exc:
        (results if go.is_set() else ready).put(("error", repr(exc)))
        raise
    finally:
        if store is not None:
            store.close()
