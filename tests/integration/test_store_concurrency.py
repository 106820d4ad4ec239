"""Store engines under real concurrency: N threads sharing one store object, and N spawned processes
each opening the store by URL, race `idem_claim` on one key, `acquire_lease` on one name and
`take_tokens` on one bucket. Exactly one claim and one lease may win; the bucket never over-grants."""

from __future__ import annotations

import multiprocessing
import queue
import threading
import time
from collections import Counter

import pytest

from shared.adapters.store_factory import open_store
from tests.integration.store_engines import url_for
from tests.integration.store_race import (
    BURST,
    DEADLINE_S,
    NOW,
    STARTUP_DEADLINE_S,
    WORKERS,
    process_worker,
    race,
)


def assert_one_winner(outcomes: list[tuple[str, bool, int]]) -> None:
    assert len(outcomes) == WORKERS
    assert Counter(claim for claim, _, _ in outcomes) == {"won": 1, "in-progress": WORKERS - 1}
    assert sum(leased for _, leased, _ in outcomes) == 1
    assert sum(granted for _, _, granted in outcomes) == BURST


@pytest.fixture(params=["sqlite-file", "redis"])
def engine_url(request: pytest.FixtureRequest, tmp_path) -> str:
    return url_for(str(request.param), request, tmp_path)


def test_threads_race_on_one_store_object(engine_url):
    store = open_store(engine_url)
    barrier = threading.Barrier(WORKERS)
    outcomes: list[tuple[str, bool, int]] = []
    errors: list[BaseException] = []

    def contender() -> None:
        try:
            outcomes.append(race(store, barrier))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=contender) for _ in range(WORKERS)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(DEADLINE_S)
        assert not errors, errors
        assert_one_winner(outcomes)
    finally:
        store.close()


# Six interpreters booting at once can take minutes on a loaded 2-core machine: the start-up has its own
# deadline (and the test a per-test timeout to match); only the race is held to DEADLINE_S.
@pytest.mark.timeout(STARTUP_DEADLINE_S + 3 * DEADLINE_S)
def test_processes_race_through_their_own_connections(engine_url):
    # Create the schema (sqlite) before the race, as the deployed functions find it.
    open_store(engine_url).close()
    ctx = multiprocessing.get_context("spawn")
    ready, go, barrier, results = ctx.Queue(), ctx.Event(), ctx.Barrier(WORKERS), ctx.Queue()
    processes = [
        ctx.Process(target=process_worker, args=(engine_url, ready, go, barrier, results)) for _ in range(WORKERS)
    ]
    try:
        for process in processes:
            process.start()
        startup_deadline = time.monotonic() + STARTUP_DEADLINE_S
        started = 0
        while started < WORKERS:
            try:
                signal = ready.get(timeout=1.0)
            except queue.Empty:
                dead = [p.exitcode for p in processes if p.exitcode not in (None, 0)]
                assert not dead, f"a contender died before opening the store (exit codes {dead})"
                if time.monotonic() > startup_deadline:
                    pytest.fail(f"only {started} of {WORKERS} processes opened the store within {STARTUP_DEADLINE_S}s")
                continue
            assert signal == "ready", signal
            started += 1
        go.set()
        outcomes = []
        for _ in range(WORKERS):
            try:
                outcome = results.get(timeout=DEADLINE_S)
            except queue.Empty:
                pytest.fail(f"only {len(outcomes)} of {WORKERS} processes reported within {DEADLINE_S}s")
            assert outcome[0] != "error", outcome
            outcomes.append(outcome)
        for process in processes:
            process.join(DEADLINE_S)
            assert process.exitcode == 0
        assert_one_winner(outcomes)
    finally:
        go.set()
        for process in processes:
            if process.is_alive():
                process.terminate()
                process.join(10)
        for channel in (ready, results):
            channel.close()
            channel.join_thread()


def test_threads_racing_schedule_takers_never_share_an_item(engine_url):
    store = open_store(engine_url)
    items = 40
    for n in range(items):
        store.schedule_put(f"race-{n:02d}", NOW - n, "p")
    barrier = threading.Barrier(WORKERS)
    taken: list[list[str]] = [[] for _ in range(WORKERS)]
    errors: list[BaseException] = []

    def taker(index: int) -> None:
        try:
            barrier.wait(timeout=DEADLINE_S)
            while batch := store.schedule_take_due(now=NOW, limit=3, visibility_s=60, claim=f"c{index}"):
                taken[index].extend(item.key for item in batch)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=taker, args=(i,)) for i in range(WORKERS)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(DEADLINE_S)
        assert not errors, errors
        every = [key for keys in taken for key in keys]
        assert sorted(every) == sorted(f"race-{n:02d}" for n in range(items))  # each exactly once
    finally:
        store.close()
